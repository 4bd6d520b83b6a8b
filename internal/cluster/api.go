// Package cluster owns the view of a keel cluster from outside a node: the
// JSON types of the admin API, the mTLS client that finds the leader and
// follows its hints, and the cluster status assembled from every node.
package cluster

import (
	"time"

	"keel/internal/config"
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
	Seed      *SeedInfo          `json:"seed,omitempty"`    // set if the node was rebuilt from a state image
	Backups   []ScheduleStatus   `json:"backups,omitempty"` // on the active node: the scheduled backups
}

// SeedInfo tells which state image a rebuilt node started from.
type SeedInfo struct {
	From      string    `json:"from"`      // the backup URL (credentials removed)
	BackupID  string    `json:"backup_id"` // the state image
	Cluster   string    `json:"cluster"`   // the cluster the image was taken of
	RaftIndex uint64    `json:"raft_index"`
	Bytes     uint64    `json:"bytes"` // taken from the backup store
	Seconds   float64   `json:"seconds"`
	At        time.Time `json:"at"`
}

// ScheduleStatus is the state of one scheduled backup on the active node.
type ScheduleStatus struct {
	Name        string    `json:"name"` // the volume, or @state
	To          string    `json:"to"`
	Interval    string    `json:"interval"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastBackup  string    `json:"last_backup,omitempty"` // id
	LastResult  string    `json:"last_result,omitempty"` // ok | skipped: … | failed: …
	LastRun     time.Time `json:"last_run,omitzero"`
	NextRun     time.Time `json:"next_run,omitzero"`
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

// BackupPushRequest backs a volume up (POST /v1/volumes/{name}/backups).
type BackupPushRequest struct {
	To   string `json:"to"`             // backup URL, e.g. file:///var/backups/keel: a directory on the leader's machine
	Full bool   `json:"full,omitempty"` // read every file, even those unchanged since the latest backup
}

// BackupProgress is a progress line of a running backup operation.
type BackupProgress struct {
	Op        string  `json:"op"`                        // push | restore | verify
	Bytes     uint64  `json:"bytes"`                     // scanned (push), written (restore), read back (verify)
	Total     uint64  `json:"total_bytes,omitempty"`     // the bytes expected, when known
	Uploaded  uint64  `json:"uploaded_bytes,omitempty"`  // push: new chunk bytes stored
	Unchanged uint64  `json:"unchanged_bytes,omitempty"` // push: data of unchanged files, not read again
	Files     int64   `json:"files"`
	Elapsed   float64 `json:"elapsed_seconds"`
	Rate      float64 `json:"bytes_per_second"`
}

// BackupEvent is one line of the NDJSON stream that backup push, verify,
// restore and prune answer with: progress lines, then a last line (Done)
// with the result, the error, or both (a verify that found problems).
type BackupEvent struct {
	Progress *BackupProgress `json:"progress,omitempty"`
	Result   any             `json:"result,omitempty"`
	Error    *ErrorBody      `json:"error,omitempty"`
	Done     bool            `json:"done,omitempty"`
}

// BackupPushResult reports a backup made.
type BackupPushResult struct {
	ID              string    `json:"id"`
	Volume          string    `json:"volume"`
	URL             string    `json:"url"`
	Manifest        string    `json:"manifest"` // its key in the store
	Snapshot        string    `json:"snapshot"` // the temporary snapshot read
	RaftIndex       uint64    `json:"raft_index"`
	SnapshotTime    time.Time `json:"snapshot_time"`
	Files           int64     `json:"files"`
	Dirs            int64     `json:"dirs"`
	Symlinks        int64     `json:"symlinks"`
	HardLinks       int64     `json:"hard_links"`
	Bytes           uint64    `json:"bytes"`      // sum of file sizes
	DataBytes       uint64    `json:"data_bytes"` // stored data, holes excluded
	BytesScanned    uint64    `json:"bytes_scanned"`
	BytesUnchanged  uint64    `json:"bytes_unchanged"` // data of files unchanged since the latest backup, not read again
	BytesUploaded   uint64    `json:"bytes_uploaded"`  // new chunks only
	ChunksUploaded  int64     `json:"chunks_uploaded"`
	ChunksReused    int64     `json:"chunks_reused"`
	ManifestBytes   int64     `json:"manifest_bytes"`
	DurationSeconds float64   `json:"duration_seconds"`
	Warnings        []string  `json:"warnings,omitempty"`
}

// BackupInfo is one backup in a listing (GET /v1/backups?url=URL).
type BackupInfo struct {
	ID          string    `json:"id"`
	Volume      string    `json:"volume"`
	Time        time.Time `json:"time"` // the snapshot's
	RaftIndex   uint64    `json:"raft_index"`
	Files       int64     `json:"files"`
	Bytes       uint64    `json:"bytes"`
	DataBytes   uint64    `json:"data_bytes"`
	UniqueBytes uint64    `json:"unique_bytes"` // used by no other backup: what pruning it alone frees
	Error       string    `json:"error,omitempty"`
}

// BackupVerifyRequest verifies backup ID at URL, or every backup there.
type BackupVerifyRequest struct {
	URL string `json:"url"`
	ID  string `json:"id,omitempty"`
}

// BackupVerifyResult reports a verification.
type BackupVerifyResult struct {
	Backups         []string `json:"backups"`
	Chunks          int64    `json:"chunks"`
	Bytes           uint64   `json:"bytes"`
	Problems        []string `json:"problems,omitempty"`
	DurationSeconds float64  `json:"duration_seconds"`
}

// BackupRestoreRequest restores a backup into a new volume.
type BackupRestoreRequest struct {
	URL       string `json:"url"`
	ID        string `json:"id,omitempty"`   // default: the latest
	From      string `json:"from,omitempty"` // the backed-up volume, when the store holds several
	Volume    string `json:"volume"`         // the new volume
	SizeBytes uint64 `json:"size_bytes,omitempty"`
}

// BackupRestoreResult reports a restore.
type BackupRestoreResult struct {
	ID              string  `json:"id"`
	Volume          string  `json:"volume"`   // the backed-up volume
	Restored        string  `json:"restored"` // the new volume
	SizeBytes       uint64  `json:"size_bytes"`
	Files           int64   `json:"files"`
	Dirs            int64   `json:"dirs"`
	Symlinks        int64   `json:"symlinks"`
	HardLinks       int64   `json:"hard_links"`
	BytesWritten    uint64  `json:"bytes_written"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// BackupPruneRequest deletes old backups and the data only they used.
type BackupPruneRequest struct {
	URL       string `json:"url"`
	KeepLast  int    `json:"keep_last,omitempty"`
	KeepDaily int    `json:"keep_daily,omitempty"`
	DryRun    bool   `json:"dry_run,omitempty"`
}

// BackupPruneResult reports a prune.
type BackupPruneResult struct {
	Kept          []string `json:"kept"`    // volume/id
	Deleted       []string `json:"deleted"` // volume/id
	ChunksDeleted int64    `json:"chunks_deleted"`
	BytesFreed    uint64   `json:"bytes_freed"`
	DryRun        bool     `json:"dry_run,omitempty"`
}

// MemberInfo is one member of the cluster (GET /v1/members): its addresses,
// and, as the answering node's raft configuration says, whether it votes.
type MemberInfo struct {
	config.Peer
	InRaft bool `json:"in_raft"`
	Voter  bool `json:"voter"`
}

// TokenRequest asks for a join token (POST /v1/tokens).
type TokenRequest struct {
	Purpose string `json:"purpose"` // node | client
	TTL     string `json:"ttl"`     // e.g. 1h
	Note    string `json:"note,omitempty"`
}

// TokenInfo is a join token as listed (GET /v1/tokens); Token (the secret
// text) only in the answer to its creation.
type TokenInfo struct {
	ID      string    `json:"id"`
	Purpose string    `json:"purpose"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Expired bool      `json:"expired"`
	Note    string    `json:"note,omitempty"`
	Token   string    `json:"token,omitempty"`
}

// RemoveResult is the answer to DELETE /v1/members/{id}.
type RemoveResult struct {
	Removed  string   `json:"removed"`
	Voters   []string `json:"voters"` // the voters left
	Warnings []string `json:"warnings,omitempty"`
}
