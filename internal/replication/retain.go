package replication

import (
	"fmt"
	"path/filepath"
)

// MaxRetainedLogBytes bounds the raft log a data node keeps for
// RetainLogFrom: past it, the log is compacted as usual, and a node rebuilt
// from an older state image receives a full snapshot instead.
const MaxRetainedLogBytes = 4 << 30

// RetainLogFrom makes this node keep the raft entries from index on
// through its log compactions, on top of the configured trailing entries,
// while its log stays under MaxRetainedLogBytes: index is the raft index of
// the newest state image in the backup store, and a node rebuilt from that
// image then takes only those entries from whichever node leads, not a full
// snapshot. Call it again as the log grows (the entries to keep are
// counted back from the last index); 0 drops the retention.
func (n *Node) RetainLogFrom(index uint64) (trailing uint64, err error) {
	base := n.cfg.TrailingLogs
	if base == 0 {
		base = 10240 // hashicorp/raft's default
	}
	trailing = base
	last := n.raft.LastIndex()
	if index > 0 && index <= last && dirSize(filepath.Join(n.cfg.Dir, "raft", "wal")) < MaxRetainedLogBytes {
		trailing = last - index + base
	}
	rc := n.raft.ReloadableConfig()
	if rc.TrailingLogs == trailing {
		return trailing, nil
	}
	rc.TrailingLogs = trailing
	if err := n.raft.ReloadConfig(rc); err != nil {
		return 0, fmt.Errorf("replication: keep the log from index %d: %w", index, err)
	}
	return trailing, nil
}
