package replication

import (
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Status is what a node reports about its part in the raft group.
type Status struct {
	ID            string            `json:"id"`
	Role          string            `json:"role"`  // data | witness
	State         string            `json:"state"` // leader | follower | candidate | shutdown
	LeaderID      string            `json:"leader_id"`
	Term          uint64            `json:"term"`
	LastIndex     uint64            `json:"last_index"`
	CommitIndex   uint64            `json:"commit_index"`
	AppliedIndex  uint64            `json:"applied_index"`
	AppliedBytes  uint64            `json:"applied_bytes"` // total bytes of log entries applied
	LastContact   time.Time         `json:"last_contact,omitempty"`
	LogBytes      int64             `json:"log_bytes"`
	SnapshotIndex uint64            `json:"snapshot_index"`
	SnapshotBytes int64             `json:"snapshot_bytes"`
	SentBytes     map[string]uint64 `json:"raft_sent_bytes"` // by peer id
	ReceivedBytes uint64            `json:"raft_received_bytes"`
	// SnapshotInstall is the leader's snapshot this node is installing, if
	// any: resync progress when the log could not catch it up.
	SnapshotInstall *InstallProgress `json:"snapshot_install,omitempty"`
	// Disk is the data disk's free space against its reserve.
	Disk DiskState `json:"disk"`
}

// Status reports this node's raft state.
func (n *Node) Status() Status {
	st := Status{
		ID:              n.cfg.ID,
		Role:            n.cfg.Role,
		State:           stateName(n.raft.State()),
		Term:            n.raft.CurrentTerm(),
		LastIndex:       n.raft.LastIndex(),
		CommitIndex:     n.raft.CommitIndex(),
		AppliedIndex:    n.tracker().get(),
		LogBytes:        dirSize(filepath.Join(n.cfg.Dir, "raft", "wal")),
		SentBytes:       map[string]uint64{},
		ReceivedBytes:   n.stream.received(),
		SnapshotInstall: n.snaps.installing(),
		Disk:            n.guard.state(),
	}
	st.LeaderID, _ = n.Leader()
	if n.store != nil {
		_, _, st.AppliedBytes = n.store.Applied()
	} else {
		st.AppliedBytes = n.witness.bytes.Load()
	}
	if st.State != "leader" {
		st.LastContact = n.raft.LastContact()
	}
	if m, ok := n.snaps.latest(); ok {
		st.SnapshotIndex = m.Index
		st.SnapshotBytes = dirSize(n.snaps.stateDirOf(m.ID))
	}
	for _, p := range n.addrs.get() {
		if p.ID != n.cfg.ID {
			st.SentBytes[p.ID] = n.stream.sentTo(p.Addr)
		}
	}
	n.metrics.LogBytes.Set(float64(st.LogBytes))
	n.metrics.SnapshotBytes.Set(float64(st.SnapshotBytes))
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return strconv.Itoa(int(s))
}
