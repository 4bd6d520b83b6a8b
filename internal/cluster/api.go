// Package cluster owns the view of a keel cluster from outside a node: the
// JSON types of the admin API, the mTLS client that finds the leader and
// follows its hints, and the cluster status assembled from every node.
package cluster

import (
	"time"

	"keel/internal/replication"
)

// NodeStatus is what GET /v1/status returns.
type NodeStatus struct {
	ID        string             `json:"id"`
	Role      string             `json:"role"`
	PID       int                `json:"pid"`
	Version   string             `json:"version"`
	RaftAddr  string             `json:"raft_addr"`
	AdminAddr string             `json:"admin_addr"`
	StartedAt time.Time          `json:"started_at"`
	Health    string             `json:"health"` // ok | no-leader | degraded: reason
	DiskFree  uint64             `json:"disk_free_bytes"`
	Raft      replication.Status `json:"raft"`
	Volumes   []VolumeInfo       `json:"volumes,omitempty"` // data nodes: from local state
	Tunnels   []TunnelInfo       `json:"tunnels,omitempty"` // tunnels connected to this node
	Active    *ActiveInfo        `json:"active,omitempty"`  // on the leader: since when it is active
	Resources []ResourceStatus   `json:"resources,omitempty"`
}

// TunnelInfo is one `keel tunnel` connection served by a node.
type TunnelInfo struct {
	Client string    `json:"client"` // the name in its client certificate
	Remote string    `json:"remote"`
	Since  time.Time `json:"since"`
}

// ActiveInfo tells since when a node is the active one and how it became so.
type ActiveInfo struct {
	Since        time.Time `json:"since"`
	Previous     string    `json:"previous,omitempty"` // the leader before, if known
	Reason       string    `json:"reason"`             // e.g. "elected after losing contact with n1", "hand-over"
	TakeoverTime string    `json:"takeover_time,omitempty"`
}

// VolumeInfo describes one volume.
type VolumeInfo struct {
	ID        uint64     `json:"id"`
	Name      string     `json:"name"`
	SizeBytes uint64     `json:"size_bytes"`
	UsedBytes uint64     `json:"used_bytes"`
	Inodes    uint64     `json:"inodes"`
	Created   time.Time  `json:"created"`
	Export    ExportInfo `json:"export"`
}

// ExportInfo is a volume's NFS export (the seed's /etc/exports line).
type ExportInfo struct {
	Clients  []string `json:"clients"` // CIDRs allowed to mount
	ReadOnly bool     `json:"read_only"`
	Squash   string   `json:"squash"` // root_squash | no_root_squash | all_squash
	AnonUID  uint32   `json:"anon_uid"`
	AnonGID  uint32   `json:"anon_gid"`
}

// VolumeRequest creates or resizes a volume.
type VolumeRequest struct {
	Name      string `json:"name,omitempty"`
	SizeBytes uint64 `json:"size_bytes"`
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error       string `json:"error"`
	Errno       string `json:"errno,omitempty"`        // e.g. ENOSPC, for filesystem errors
	LeaderID    string `json:"leader_id,omitempty"`    // when the request must go to the leader
	LeaderAdmin string `json:"leader_admin,omitempty"` // its admin address
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"` // file | dir | symlink
	Size  uint64    `json:"size"`
	Mode  uint32    `json:"mode"`
	Ino   uint64    `json:"ino"`
	Mtime time.Time `json:"mtime"`
}

// StateHash is a data node's state digest at an applied index.
type StateHash struct {
	ID           string `json:"id"`
	AppliedIndex uint64 `json:"applied_index"`
	Hash         string `json:"hash"`
}

// SnapshotInfo describes a volume snapshot.
type SnapshotInfo struct {
	Volume          string    `json:"volume"`
	Name            string    `json:"name"`
	Created         time.Time `json:"created"`
	Index           uint64    `json:"raft_index"` // the snapshot holds the state just before this log entry
	VolumeUsedBytes uint64    `json:"volume_used_bytes"`
	VolumeInodes    uint64    `json:"volume_inodes"`
	HeldBytes       uint64    `json:"held_bytes"` // disk space only this snapshot still holds
	Missing         bool      `json:"missing,omitempty"`
}

// SnapshotRequest creates a snapshot.
type SnapshotRequest struct {
	Name string `json:"name"`
}

// CloneRequest makes a volume from a snapshot.
type CloneRequest struct {
	Snapshot  string `json:"snapshot"`
	To        string `json:"to"`
	SizeBytes uint64 `json:"size_bytes,omitempty"`
}

// RevertRequest puts a snapshot back.
type RevertRequest struct {
	Snapshot string `json:"snapshot"`
	Force    bool   `json:"force,omitempty"`
}
