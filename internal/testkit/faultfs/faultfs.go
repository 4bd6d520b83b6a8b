package faultfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Available returns nil when this process can mount a faultfs (root and
// /dev/fuse), or an error that says what is missing.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("faultfs needs root to mount a FUSE filesystem with mount(2); run the test as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("faultfs needs /dev/fuse (load the fuse module or give the container the device): %w", err)
	}
	return nil
}

// FS is a mounted faultfs.
type FS struct {
	Backing, Mountpoint string

	server *fuse.Server

	// life is read-locked by every operation and write-locked by Crash and
	// Unmount, so a crash happens between operations, never inside one.
	life sync.RWMutex

	mu         sync.Mutex
	crashed    bool
	overlays   map[uint64]*overlay // by backing inode number
	dirtyBytes int64
	full       bool
	quota      int64 // bytes of writes still admitted; <0: no quota
	overwrite  bool  // when full, writes inside a file's size still pass
	delay      time.Duration
	syncs      int64
}

// Mount mounts a faultfs at mountpoint (an existing empty directory) that
// passes through to backing (an existing directory on one filesystem).
func Mount(backing, mountpoint string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("faultfs: backing directory: %w", err)
	}
	f := &FS{Backing: backing, Mountpoint: mountpoint, overlays: map[uint64]*overlay{}, quota: -1}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, ffs: f}
	}
	rootNode := root.NewNode(root, nil, "", &st)
	root.RootNode = rootNode
	timeout := time.Second
	srv, err := fs.Mount(mountpoint, rootNode, &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			AllowOther:  true,
			FsName:      "faultfs:" + backing,
			Name:        "faultfs",
			MaxWrite:    1 << 20,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("faultfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	f.server = srv
	return f, nil
}

// SetFsyncDelay makes every later file fsync sleep d before it syncs.
func (f *FS) SetFsyncDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// SetFull makes the filesystem full (true) or gives it space again (false,
// which also lifts a quota).
func (f *FS) SetFull(full bool) {
	f.mu.Lock()
	f.full = full
	if !full {
		f.quota = -1
	}
	f.mu.Unlock()
}

// SetOverwriteWhenFull chooses what a full filesystem refuses. By default
// (false) every data write and every flush of dirty data fails, as on a
// copy-on-write filesystem (btrfs, ZFS) that needs new blocks even to
// overwrite. With true, writes that lie wholly inside a file's current size,
// and flushes that do not grow the file past its size on the backing
// directory, still succeed, as on ext4 or XFS, where blocks already
// allocated (raft-wal preallocates its segments) need no new space. New
// names, fallocate and writes past the end still fail.
func (f *FS) SetOverwriteWhenFull(ok bool) {
	f.mu.Lock()
	f.overwrite = ok
	f.mu.Unlock()
}

// SetQuota admits n more bytes of file writes; after that the filesystem is
// full. n < 0 lifts the quota.
func (f *FS) SetQuota(n int64) {
	f.mu.Lock()
	f.quota = n
	f.mu.Unlock()
}

// DirtyBytes is how many bytes of file data a crash would drop now (in whole
// 4 KiB pages).
func (f *FS) DirtyBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirtyBytes
}

// Syncs is how many file fsyncs have completed.
func (f *FS) Syncs() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Cut stops the disk at once, as a power loss does: from now on every
// operation fails with EIO, an fsync in flight too unless it has already
// begun writing to the backing file (it then completes, as a whole), so
// nothing more reaches the backing directory. It returns how many unsynced
// bytes the disk holds then, which Crash will drop. A power loss is Cut,
// then kill the processes, then Crash: killing first lets the fsyncs a
// process had in flight complete after its death, which a real power loss
// does not.
func (f *FS) Cut() int64 {
	f.life.Lock()
	defer f.life.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed = true
	return f.dirtyBytes
}

// Crash simulates a power loss: every byte not fsync'd is dropped and the
// filesystem is unmounted. Kill the processes using it first (or Cut, kill,
// Crash: see Cut); a process still holding files open gets EIO from then on
// and the mount is detached lazily.
func (f *FS) Crash() error {
	f.life.Lock()
	f.mu.Lock()
	f.crashed = true
	dropped := f.dirtyBytes
	f.overlays = map[uint64]*overlay{}
	f.dirtyBytes = 0
	f.mu.Unlock()
	f.life.Unlock()
	slog.Info("faultfs: crash", "mountpoint", f.Mountpoint, "dropped_bytes", dropped)
	return f.unmount()
}

// Unmount unmounts the filesystem. Unsynced data is not written back (a
// faultfs has no write-back of its own): it is dropped as by Crash, and a
// warning says how much. Callers that want it kept fsync first.
func (f *FS) Unmount() error {
	if n := f.DirtyBytes(); n > 0 {
		slog.Warn("faultfs: unmount drops unsynced data", "mountpoint", f.Mountpoint, "bytes", n)
	}
	return f.Crash()
}

func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	err := f.server.Unmount()
	if err != nil {
		// Busy (a process still has it open): detach it lazily.
		if derr := syscall.Unmount(f.Mountpoint, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("faultfs: unmount %s: %w (lazy detach: %v)", f.Mountpoint, err, derr)
		}
	}
	f.server = nil
	return nil
}

// enter starts an operation; it fails with EIO after a crash.
func (f *FS) enter() syscall.Errno {
	f.life.RLock()
	f.mu.Lock()
	c := f.crashed
	f.mu.Unlock()
	if c {
		f.life.RUnlock()
		return syscall.EIO
	}
	return 0
}

func (f *FS) leave() { f.life.RUnlock() }

func (f *FS) isFull() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.full || f.quota == 0
}

// isFullForFlush: only SetFull(true) fails flushes; bytes a quota admitted
// may be written back.
func (f *FS) isFullForFlush() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.full
}

func (f *FS) overwriteWhenFull() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overwrite
}

// statfs makes the free space a full filesystem reports honest: none when
// full, at most what the quota still admits.
func (f *FS) statfs(out *fuse.StatfsOut) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := uint64(out.Bsize)
	if bs == 0 {
		bs = 4096
	}
	avail := out.Bavail
	switch {
	case f.full || f.quota == 0:
		avail = 0
	case f.quota > 0:
		avail = min(avail, uint64(f.quota)/bs)
	}
	out.Bavail = avail
	out.Bfree = min(out.Bfree, avail)
}

// admit reserves n bytes of writes against fullness and the quota.
func (f *FS) admit(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return false
	}
	if f.quota >= 0 {
		if n > f.quota {
			f.quota = 0
			return false
		}
		f.quota -= n
	}
	return true
}

func (f *FS) account(delta int64) {
	f.mu.Lock()
	f.dirtyBytes += delta
	f.mu.Unlock()
}

func (f *FS) overlay(ino uint64, create bool) *overlay {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.overlays[ino]
	if o == nil && create {
		o = &overlay{}
		f.overlays[ino] = o
	}
	return o
}

// forget drops the overlay of an inode whose last name went away.
func (f *FS) forget(ino uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.overlays[ino]; o != nil {
		o.mu.Lock()
		f.dirtyBytes -= int64(len(o.pages)) * pageSize
		o.mu.Unlock()
		delete(f.overlays, ino)
	}
}

func (f *FS) fsyncDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return fs.ToErrno(err)
}
