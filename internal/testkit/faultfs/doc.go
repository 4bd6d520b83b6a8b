// Package faultfs is a FUSE filesystem for crash-consistency tests: it passes
// through to a backing directory, in the style of Jepsen's LazyFS, but keeps
// every byte of file data that was written and not yet fsync'd in memory.
//
// Design. Each backing inode that has unsynced changes has an overlay: dirty
// 4 KiB pages (read-modify-write from the backing file on first touch), the
// logical size, and a "floor" below which a truncate was done that is not yet
// on the backing file (backing bytes at or past the floor read as zeros).
// Reads, getattr and statx see the overlay, so a process sees its own writes
// exactly as on a real page cache. fsync/fdatasync of a file (FUSE FSYNC)
// applies the overlay to the backing file — truncate to the floor, write the
// pages, set the size — and fsyncs the backing file. Crash drops every overlay
// and unmounts: what was not synced is gone, as after a power loss.
//
// Faults: SetFsyncDelay makes every file fsync sleep first (a slow disk);
// SetFull makes data writes, fallocate, flushes of dirty data and the creation
// of new names fail with ENOSPC, each wholly (nothing partial); SetQuota
// admits that many more bytes of writes and then behaves as full. Statfs
// reports no free space when full and at most the quota left otherwise, so
// a program's own free-space checks see what its writes will meet.
// SetOverwriteWhenFull lets a full filesystem still take writes inside a
// file's current size, as ext4 and XFS do (the default fails them too, as a
// copy-on-write filesystem does).
//
// Limits, honestly:
//   - Metadata operations (create, mkdir, mknod, symlink, link, rename,
//     unlink, rmdir, chmod, utimes) pass through to the backing directory at
//     once. faultfs models lost file data, not lost directory entries: a file
//     created and never fsync'd survives a crash with the size it had at its
//     last fsync (empty if never), and a rename is never undone. Directory
//     fsync passes through without the fsync delay.
//   - mmap: reads through a shared mapping work (the kernel fills its page
//     cache with FUSE READs, which see the overlay). Writes through a shared
//     writable mapping reach faultfs only when the kernel writes pages back
//     (the mount has no writeback cache, so msync/munmap writes them as FUSE
//     WRITEs that become dirty overlay data until the next fsync); keel's
//     storage does not write through mappings — raft-wal appends with pwrite
//     and fsync, its bbolt meta store maps the file read-only and writes with
//     pwrite + fdatasync, Pebble writes with write/pwrite + fdatasync.
//   - The backing directory must be one filesystem (overlays are keyed by the
//     backing inode number). O_TMPFILE and copy_file_range are refused
//     (callers fall back to ordinary writes).
//   - Overlays live in memory: tests must keep their unsynced data small.
//
// Mounting needs root and /dev/fuse; Available says why not when it cannot.
// The mount is made with mount(2) directly (DirectMount), so fusermount is not
// needed.
package faultfs
