package fsstate

import (
	"syscall"
)

// This file is the contract between the state machine and its callers
// (internal/replication, internal/fsapi, the NFS layer). Keep it stable.

// FileType is the type of an inode.
type FileType uint8

const (
	TypeRegular FileType = 1
	TypeDir     FileType = 2
	TypeSymlink FileType = 3
)

// RootIno is the inode number of every volume's root directory.
const RootIno uint64 = 1

// ChunkSize is the unit in which file data is stored.
const ChunkSize = 64 << 10

// MaxEntryData is the largest payload a single Write command may carry; callers
// split larger writes into several commands.
const MaxEntryData = 256 << 10

// MaxNameLen is the longest directory entry name accepted.
const MaxNameLen = 255

// FirstCookie is the readdir cookie of a directory's first real entry; the NFS
// layer uses the values below it for "." and "..".
const FirstCookie uint64 = 3

// Time is nanoseconds since the Unix epoch, always chosen by the leader.
type Time int64

// Attr is an inode's attributes.
type Attr struct {
	Vol    uint64
	Ino    uint64
	Gen    uint64 // generation: changes when an inode number is reused
	Type   FileType
	Mode   uint32 // permission bits only (07777)
	Nlink  uint32
	UID    uint32
	GID    uint32
	Size   uint64 // logical size; for a directory, a value derived from its entries; for a symlink, len(target)
	Used   uint64 // bytes of data actually stored (holes excluded)
	Atime  Time
	Mtime  Time
	Ctime  Time
	Parent uint64 // directories only: the parent directory's inode (root: itself)
}

// Volume is a named filesystem with a size limit.
type Volume struct {
	ID        uint64
	Name      string
	SizeLimit uint64 // bytes
	Used      uint64 // bytes of file data stored
	Inodes    uint64 // live inodes, root included
	Created   Time
	Export    Export // who may mount it and how their credentials are mapped
}

// DirEntry is one entry returned by ReadDir.
type DirEntry struct {
	Name   string
	Ino    uint64
	Cookie uint64
	Attr   Attr
}

// Cred is the caller's identity for permission checks. A nil *Cred means the
// operation is done with full privilege (admin API, internal callers).
type Cred struct {
	UID  uint32
	GID  uint32
	GIDs []uint32
}

// CreateMode mirrors NFSv3 createmode3.
type CreateMode uint8

const (
	CreateUnchecked CreateMode = 0
	CreateGuarded   CreateMode = 1
	CreateExclusive CreateMode = 2
)

// SetAttr selects which attributes a SetAttr command changes.
type SetAttr struct {
	Mode  *uint32
	UID   *uint32
	GID   *uint32
	Size  *uint64
	Atime *Time // set to this time (callers resolve SET_TO_SERVER_TIME to the leader's clock)
	Mtime *Time
}

// Op identifies a command.
type Op uint8

const (
	OpNoop Op = iota
	OpCreateVolume
	OpResizeVolume
	OpDeleteVolume
	OpCreate // regular file, directory or symlink (by Type)
	OpWrite
	OpSetAttr
	OpRemove // unlink a non-directory
	OpRmdir
	OpRename
	OpLink
	OpSetExport // replace a volume's NFS export settings (VolName, Export)

	// Volume snapshots (volsnap.go).
	OpSnapshotCreate // snapshot volume VolName as SnapName (Time: its creation time)
	OpSnapshotDelete // delete snapshot SnapName of volume VolName
	OpVolumeClone    // new volume ToName (SizeLimit, 0: the source's) from snapshot SnapName of VolName
	OpVolumeRevert   // put snapshot SnapName's content back into volume VolName

	// OpClusterSet sets cluster record Name to Data, or deletes it when Data
	// is empty (cluster.go): membership and join tokens, replicated with the
	// files so that any leader sees them.
	OpClusterSet
)

// lastOp is the highest Op value a command may carry.
const lastOp = OpClusterSet

// Command is one state-machine operation, carried in one raft log entry. Every
// value that must be identical on all replicas (time above all) is chosen by
// the leader and carried here; inode and volume numbers are allocated from
// counters kept in the replicated state itself, so they are identical too.
type Command struct {
	Op   Op
	Time Time  // leader's clock when the command was proposed
	Cred *Cred // nil: privileged

	// Volume operations.
	VolName   string
	SizeLimit uint64
	Force     bool

	// File operations.
	Vol    uint64
	Ino    uint64 // target inode (Write, SetAttr, Link source)
	Dir    uint64 // parent directory (Create, Remove, Rmdir, Link target dir, Rename source dir)
	Name   string // entry name (Create, Remove, Rmdir, Link, Rename source name)
	ToDir  uint64 // Rename destination directory
	ToName string // Rename destination name; VolumeClone: the new volume's name
	Type   FileType
	Mode   uint32 // Create: permission bits
	UID    uint32 // Create: owner (callers pass cred's uid, after squashing)
	GID    uint32 // Create: group
	Target string // Create symlink: link target
	CMode  CreateMode
	Verf   uint64 // CreateExclusive verifier
	Offset uint64 // Write
	Data   []byte // Write (at most MaxEntryData)
	Set    SetAttr
	Guard  *Time // SetAttr: NFS sattrguard3, fails with ENOTSYNC-equivalent if ctime differs

	// Export is the new export of volume VolName (SetExport).
	Export *Export

	// SnapName names a snapshot of volume VolName (SnapshotCreate,
	// SnapshotDelete, VolumeClone, VolumeRevert); VolumeClone names the new
	// volume in ToName. Same rules as volume names (ValidVolumeName).
	SnapName string

	// Req, when set, names the NFS request this command carries out: its
	// result is recorded with the change, and a later command with the same
	// Req (a retransmission) is answered from the record instead of being
	// applied again (see RequestID).
	Req *RequestID
}

// WCC is weak cache consistency data for a directory or file: its attributes
// before (Pre: only Size, Mtime, Ctime are meaningful) and after the change.
type WCC struct {
	Valid bool
	Pre   Attr
	Post  Attr
}

// Result is what applying a command returned. Err is 0 on success, otherwise
// a syscall.Errno (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENOSPC,
// ENAMETOOLONG, EINVAL, EACCES, EPERM, ESTALE, EXDEV, ELOOP, …).
type Result struct {
	Err    syscall.Errno
	Attr   Attr // the object created / written / changed (Create, Write, SetAttr, Link)
	Volume Volume
	Dir    WCC // Create, Remove, Rmdir, Link: the directory; Rename: source dir
	ToDir  WCC // Rename: destination dir
	Obj    WCC // Write, SetAttr: the file

	// Skipped is set (with Err 0) when the entry's index was at or below the
	// applied index already stored, so the command was not applied again.
	Skipped bool

	// Replayed is set when the command carried a Req already recorded with
	// the same argument hash: it was not applied again, and the rest of the
	// Result is the one recorded when it was (see RequestID).
	Replayed bool
}

// SnapshotInfo describes a snapshot of a volume (Store.Snapshots).
type SnapshotInfo struct {
	Vol     uint64
	VolName string // the volume's name when the snapshot was taken
	Name    string
	Created Time   // the time of the command that took it
	Index   uint64 // the raft index of that command; the snapshot holds the state just before it

	// The volume's Used and Inodes in the snapshot.
	VolumeUsed   uint64
	VolumeInodes uint64

	// HeldBytes is the size of the snapshot's files that the live state no
	// longer shares: the disk space deleting the snapshot would free. It is
	// about zero for a fresh snapshot and grows as the volume changes and
	// compactions rewrite the live files.
	HeldBytes uint64

	// Missing is set when the state records the snapshot but its directory
	// is gone (lost, or not carried by the raft snapshot this node was
	// restored from); it cannot be read, cloned or reverted to, only deleted.
	Missing bool
}

// ErrNotSync is returned by SetAttr when a guard does not match (NFS3ERR_NOT_SYNC).
const ErrNotSync = syscall.Errno(10002)
