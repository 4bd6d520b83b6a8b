package config

import "time"

// Default returns the built-in defaults, suited to nodes on one LAN. Raise
// the raft timeouts for links with more latency.
func Default() Config {
	return Config{
		Node: NodeConfig{Role: RoleData},
		Raft: DefaultRaft(),
		Log:  Log{Level: "info", Format: "text"},
	}
}

// DefaultRaft returns the default raft timings (LAN): a follower that hears
// nothing from the leader for 0.5-1 s starts an election, so a dead active
// node is replaced in about 1-1.5 s; a leader cut off from its quorum for
// 250 ms stops serving. Across zones or a WAN, double or triple them.
func DefaultRaft() Raft {
	return Raft{
		HeartbeatTimeout:   Duration(500 * time.Millisecond),
		ElectionTimeout:    Duration(500 * time.Millisecond),
		LeaderLeaseTimeout: Duration(250 * time.Millisecond),
		CommitTimeout:      Duration(50 * time.Millisecond),
		ApplyTimeout:       Duration(10 * time.Second),
		SnapshotInterval:   Duration(2 * time.Minute),
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}
