// Package config owns keel's configuration files: the node config read by
// `keel serve`, the client config used by commands that talk to a cluster, and
// the directory of certificates and configs that `keel init` generates.
//
// Values are resolved in this order: built-in defaults, the YAML file,
// environment variables (KEEL_*), then command-line flags; Validate reports
// every bad field by its YAML path together with how to fix it.
package config

import "time"

// Role of a node in the cluster.
const (
	RoleData    = "data"
	RoleWitness = "witness"
)

// Config is a storage node's configuration (node.yaml).
type Config struct {
	ClusterID string     `yaml:"cluster_id"`
	Node      NodeConfig `yaml:"node"`
	Peers     []Peer     `yaml:"peers"` // every member of the cluster, this node included
	Bootstrap bool       `yaml:"bootstrap"`
	TLS       TLSFiles   `yaml:"tls"`
	Raft      Raft       `yaml:"raft"`
	Log       Log        `yaml:"log"`
	NFS       NFS        `yaml:"nfs,omitempty"`

	// Prefer names the data node that should be active whenever it is up and
	// caught up (Heartbeat's auto_failback on): leadership returns to it.
	Prefer string `yaml:"prefer,omitempty"`
	// Resources are commands run on the active node (Heartbeat's resource
	// scripts): start when it becomes active, stop when it stops, monitor
	// periodically while active.
	Resources []Resource `yaml:"resources,omitempty"`
	// RestoreFrom makes this a new cluster rebuilt from another cluster's
	// state image (keel init --restore-from): URL or URL@ID. Each data node
	// that starts with an empty data_dir seeds its state from that image,
	// with this cluster's data nodes as the raft voters.
	RestoreFrom string `yaml:"restore_from,omitempty"`
	// Backups are run on a schedule by the active node.
	Backups []BackupSchedule `yaml:"backups,omitempty"`

	// Dir is the directory the config file was read from; relative paths in
	// the file are resolved against it. Not read from YAML.
	Dir string `yaml:"-"`
}

// NodeConfig describes this node.
type NodeConfig struct {
	ID          string `yaml:"id"`
	Role        string `yaml:"role"`                   // data | witness
	DataDir     string `yaml:"data_dir"`               // raft log, snapshots, state
	RaftAddr    string `yaml:"raft_addr"`              // host:port raft listens on and peers dial
	AdminAddr   string `yaml:"admin_addr"`             // host:port of the HTTPS admin API and /metrics
	NFSAddr     string `yaml:"nfs_addr,omitempty"`     // host:port of NFSv3 + MOUNT (+ portmapper); data nodes only
	PortmapAddr string `yaml:"portmap_addr,omitempty"` // optional extra portmapper listener, e.g. 0.0.0.0:111
	MountAddr   string `yaml:"mount_addr,omitempty"`   // optional separate MOUNT port (MOUNT is always on nfs_addr too)
	// SeedFrom is a backup URL (file:// or s3://) holding state images of
	// this cluster: a data node that starts with an empty data_dir takes
	// the newest one as its state, then catches up from the leader with
	// only the changes made after it. Ignored once the node has data.
	SeedFrom string `yaml:"seed_from,omitempty"`
	// MinFreeSpace is the free space the data disk keeps for the raft log
	// and the state's own bookkeeping; 0: 256MiB, at least 16MiB. Below it
	// the node reports its disk full; a leader hands its role to a node
	// with room, or else refuses changes that add data with ENOSPC
	// (removals still go through).
	MinFreeSpace Size `yaml:"min_free_space,omitempty"`
}

// Peer is one member of the cluster as the others see it.
type Peer struct {
	ID        string `yaml:"id" json:"id"`
	Role      string `yaml:"role" json:"role"`
	RaftAddr  string `yaml:"raft_addr" json:"raft_addr"`
	AdminAddr string `yaml:"admin_addr" json:"admin_addr"`
	NFSAddr   string `yaml:"nfs_addr,omitempty" json:"nfs_addr,omitempty"`
}

// TLSFiles names the PEM files of this node or client.
type TLSFiles struct {
	CA     string `yaml:"ca"`               // cluster CA certificate
	Cert   string `yaml:"cert"`             // this node's (or client's) certificate
	Key    string `yaml:"key"`              // its private key (0600)
	Secret string `yaml:"secret,omitempty"` // file-handle MAC secret (nodes only, 0600)
	// CAKey is the cluster CA's private key (data nodes only, 0600): with it
	// the leader signs the certificates of machines that join with a token.
	// Without it joining is off and certificates are issued offline.
	CAKey string `yaml:"ca_key,omitempty"`
}

// Raft holds the replication timings. The defaults suit a LAN; raise them for
// links with more latency (cross-zone, WAN).
type Raft struct {
	HeartbeatTimeout   Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout Duration `yaml:"leader_lease_timeout"`
	CommitTimeout      Duration `yaml:"commit_timeout"`
	ApplyTimeout       Duration `yaml:"apply_timeout"`
	SnapshotInterval   Duration `yaml:"snapshot_interval"`
	SnapshotThreshold  uint64   `yaml:"snapshot_threshold"`
	TrailingLogs       uint64   `yaml:"trailing_logs"`
	// LogSegmentSize is the size of one raft log segment file; 0: 64MiB.
	// The log is dropped after a snapshot by whole segments only, so
	// smaller segments hold less disk behind a snapshot (and make a
	// follower that was down for long catch up by snapshot sooner).
	// Between 1MiB and 1GiB.
	LogSegmentSize Size `yaml:"log_segment_size,omitempty"`
}

// NFS bounds the memory the NFS server's clients can make it hold: the
// calls in flight (request records being read or served, replies not yet
// written). A connection that reaches its share, or finds the budget taken,
// is not read until replies go out (TCP backpressure); none is refused.
type NFS struct {
	// MaxInflightBytes is the budget of all connections together; 0:
	// 256MiB. At least 4MiB.
	MaxInflightBytes Size `yaml:"max_inflight_bytes,omitempty"`
	// MaxConnInflightBytes is one connection's share; 0: a sixteenth of
	// max_inflight_bytes (16MiB of 256MiB). At least 4MiB (one 1 MiB
	// WRITE or READ and then some), at most max_inflight_bytes.
	MaxConnInflightBytes Size `yaml:"max_conn_inflight_bytes,omitempty"`
}

// Limits of the nfs section (MinNFSInflight is rpc.MinConnInFlightBytes).
const (
	DefaultNFSInflight = 256 << 20
	MinNFSInflight     = 4 << 20
)

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Client is the configuration of a client of the cluster (client.yaml): the
// CLI, and later `keel tunnel`.
type Client struct {
	ClusterID string   `yaml:"cluster_id"`
	Peers     []Peer   `yaml:"peers"`
	TLS       TLSFiles `yaml:"tls"`
	Dir       string   `yaml:"-"`
}

// Duration is a time.Duration that reads and writes as "1s", "500ms".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Resource is a service that runs next to the data on the active node, such
// as a floating IP or an application.
type Resource struct {
	Name     string   `yaml:"name"`
	Start    string   `yaml:"start,omitempty"`    // shell command run on becoming active
	Stop     string   `yaml:"stop,omitempty"`     // shell command run on ceasing to be active
	Monitor  string   `yaml:"monitor,omitempty"`  // shell command run every Interval while active; non-zero exit is a failure
	Interval Duration `yaml:"interval,omitempty"` // default 10s
	Timeout  Duration `yaml:"timeout,omitempty"`  // per command; default 30s
	// FailoverAfter hands the active role to another node after this many
	// consecutive monitor failures (0: never, only report).
	FailoverAfter int `yaml:"failover_after,omitempty"`
}

// BackupSchedule is a backup the active node makes every Interval, then
// prunes to the retention given. Each entry backs up one volume, or (state:
// true) the whole node's state as a state image for rebuilding a node.
type BackupSchedule struct {
	Volume    string   `yaml:"volume,omitempty"`
	State     bool     `yaml:"state,omitempty"`
	To        string   `yaml:"to"`       // backup URL: file:///path or s3://bucket/prefix
	Interval  Duration `yaml:"interval"` // e.g. 1h
	KeepLast  int      `yaml:"keep_last,omitempty"`
	KeepDaily int      `yaml:"keep_daily,omitempty"`
}

// Name is how the schedule is named in status, logs and metrics: the
// volume, or "@state".
func (b BackupSchedule) Name() string {
	if b.State {
		return "@state"
	}
	return b.Volume
}
