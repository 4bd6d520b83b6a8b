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

// DefaultRaft returns the default raft timings (LAN).
func DefaultRaft() Raft {
	return Raft{
		HeartbeatTimeout:   Duration(time.Second),
		ElectionTimeout:    Duration(time.Second),
		LeaderLeaseTimeout: Duration(500 * time.Millisecond),
		CommitTimeout:      Duration(50 * time.Millisecond),
		ApplyTimeout:       Duration(10 * time.Second),
		SnapshotInterval:   Duration(2 * time.Minute),
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}
