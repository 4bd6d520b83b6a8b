// Package fsstate owns keel's replicated filesystem state machine: volumes,
// inodes, directory entries and file data, kept in a Pebble database.
//
// Every node applies the same raft log entries, each carrying one encoded
// Command, through Store.ApplyBatch. Applying is deterministic: times come
// from the command (chosen by the leader), inode, generation and volume
// numbers come from counters kept in the state itself, and nothing reads a
// clock, a random source or a map's iteration order. The applied raft index is
// written in the same Pebble batch as the changes it covers, so Pebble needs
// no write-ahead log of its own: after a crash raft re-applies the entries
// past the stored index, and ApplyBatch skips those already applied.
//
// A command either takes full effect or none at all (only the applied index
// advances); its outcome is reported as a syscall.Errno in Result.Err, with
// POSIX/NFSv3 semantics modelled on what Linux does on ext4 and XFS.
//
// A command may name the NFS request it carries out (Command.Req). Its
// Result, success or failure, is then recorded in the same batch as its
// change, and a retransmission of the request is answered from that record
// (Result.Replayed) instead of being applied twice, on whichever node is
// leader by then. Records expire DRCRetention after the command's time
// (drc.go). Each volume also carries its NFS export settings (Export).
//
// Reads (GetAttr, Lookup, Read, ReadDir, …) may run concurrently with
// ApplyBatch and see the state as of a committed batch. Checkpoint and
// RestoreFrom give raft its snapshots; Hash lets replicas compare their state.
//
// Volumes have snapshots (OpSnapshotCreate, …; volsnap.go): Pebble
// checkpoints of the whole state taken, on every replica, exactly before the
// entry that creates them, kept in <dir>/volsnaps/<vol>/<name>/, read through
// OpenSnapshot, and copied back into the live state by OpVolumeClone and
// OpVolumeRevert. Raft snapshots (Checkpoint, RestoreFrom) carry them.
//
// Key layout (all integers big-endian so that keys sort numerically):
//
//	m/format                      format version of the store (1 byte)
//	m/applied                     applied index, term, total applied entry bytes
//	m/nextvol                     next volume id
//	v/<vol:8>                     volume record
//	n/<name>                      volume name → volume id
//	i/<vol:8><ino:8>              inode record (attributes, counters, symlink target)
//	d/<vol:8><dir:8><name>        directory entry by name → inode, cookie
//	e/<vol:8><dir:8><cookie:8>    directory entry by cookie → name
//	c/<vol:8><ino:8><chunk:8>     file data of one ChunkSize chunk, stored up to
//	                              the last written byte (holes use no space)
//	s/<vol:8><name>               volume snapshot record: created, raft index,
//	                              volume used and inodes, volume name
//	r/<len:1><client><xid:4><proc:4>
//	                              recorded reply to an NFS request: version, time,
//	                              argument hash, EncodeResult of its Result
//	k/<name>                      cluster record (membership, join tokens): opaque
//	                              bytes set by OpClusterSet
//	R/<time:8><len:1><client><xid:4><proc:4>
//	                              the same records by time (sign bit flipped so
//	                              that times sort), for expiry; empty value
//
// The "/" after each prefix letter is for reading only: keys are the letter
// followed directly by the fields (the m/ keys excepted, which are spelled
// out).
package fsstate
