package replication

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// CompactWitnessLog lets a witness drop log entries that every data node
// already holds in its own log (upTo is the smallest last index the data
// nodes reported). The witness keeps everything after upTo: if the data
// leader is lost, the surviving data node may need any of those entries and
// the witness is the only other copy. Only a witness compacts this way; it
// never snapshots on its own.
func (n *Node) CompactWitnessLog(upTo uint64) (dropped uint64, err error) {
	if n.cfg.Role != RoleWitness {
		return 0, errors.New("replication: only a witness compacts its log this way")
	}
	first, err := n.wal.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("replication: %w", err)
	}
	last := n.raft.LastIndex()
	applied := n.tracker().get()
	if upTo > applied {
		upTo = applied // a snapshot cannot go past what was applied
	}
	if upTo <= first || last <= upTo {
		return 0, nil
	}
	rc := n.raft.ReloadableConfig()
	keep := rc
	// After the snapshot at the applied index, raft keeps TrailingLogs
	// entries below it: keep exactly the ones after upTo.
	rc.TrailingLogs = applied - upTo
	if err := n.raft.ReloadConfig(rc); err != nil {
		return 0, fmt.Errorf("replication: %w", err)
	}
	defer func() { _ = n.raft.ReloadConfig(keep) }()
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return 0, fmt.Errorf("replication: witness snapshot: %w", err)
	}
	nf, _ := n.wal.FirstIndex()
	if nf > first {
		dropped = nf - first
	}
	return dropped, nil
}
