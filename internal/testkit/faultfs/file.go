package faultfs

import (
	"context"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// file is an open file of a faultfs. Its backing descriptor is always
// read-write. The embedded LoopbackFile gives Release, Flush, locks and ioctl;
// data, size and sync go through the inode's overlay.
type file struct {
	*fs.LoopbackFile
	fd  int
	ffs *FS
	ino uint64
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
)

// PassthroughFd refuses kernel passthrough: every read and write must reach
// the overlay.
func (h *file) PassthroughFd() (int, bool) { return 0, false }

// Writev shadows the LoopbackFile's, which would write to the backing file.
func (h *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return h.Write(ctx, all, off)
}

// Statx shadows the LoopbackFile's: the node answers by path and patches the size.
func (h *file) Statx() {}

func (h *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := h.ffs.enter(); e != 0 {
		return nil, e
	}
	defer h.ffs.leave()
	n, err := h.ffs.overlay(h.ino, true).read(h.fd, buf, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

func (h *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := h.ffs.enter(); e != 0 {
		return 0, e
	}
	defer h.ffs.leave()
	if !h.ffs.admit(int64(len(data))) && !h.overwrites(off, len(data)) {
		return 0, syscall.ENOSPC
	}
	added, err := h.ffs.overlay(h.ino, true).write(h.fd, data, off)
	h.ffs.account(added)
	if err != nil {
		return 0, toErrno(err)
	}
	return uint32(len(data)), 0
}

// truncate sets the logical size in the overlay. Caller has entered.
func (h *file) truncate(size int64) syscall.Errno {
	delta, err := h.ffs.overlay(h.ino, true).truncate(h.fd, size)
	h.ffs.account(delta)
	return toErrno(err)
}

func (h *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if e := h.LoopbackFile.Getattr(ctx, out); e != 0 {
		return e
	}
	o := h.ffs.overlay(h.ino, false)
	if o != nil {
		o.mu.Lock()
		if o.dirty {
			out.Size = uint64(o.size)
			out.Blocks = (out.Size + 511) / 512
		}
		o.mu.Unlock()
	}
	return 0
}

func (h *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := h.ffs.enter(); e != 0 {
		return e
	}
	defer h.ffs.leave()
	if sz, ok := in.GetSize(); ok {
		cur, err := h.logicalSize()
		if err != nil {
			return toErrno(err)
		}
		if int64(sz) > cur && h.ffs.isFull() {
			return syscall.ENOSPC
		}
		if e := h.truncate(int64(sz)); e != 0 {
			return e
		}
		rest := *in
		rest.Valid &^= fuse.FATTR_SIZE
		in = &rest
	}
	if in.Valid != 0 {
		if e := h.LoopbackFile.Setattr(ctx, in, out); e != 0 {
			return e
		}
	}
	return h.Getattr(ctx, out)
}

// Allocate reserves space: with FALLOC_FL_KEEP_SIZE it only checks for
// space; plain mode 0 extends the logical size. Hole punching is refused.
func (h *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if e := h.ffs.enter(); e != 0 {
		return e
	}
	defer h.ffs.leave()
	if h.ffs.isFull() {
		return syscall.ENOSPC
	}
	switch mode {
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	case 0:
		cur, err := h.logicalSize()
		if err != nil {
			return toErrno(err)
		}
		if end := int64(off + size); end > cur {
			return h.truncate(end)
		}
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
}

// Lseek answers SEEK_DATA and SEEK_HOLE as if the file had no holes.
func (h *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	size, err := h.logicalSize()
	if err != nil {
		return 0, toErrno(err)
	}
	if int64(off) >= size {
		return 0, syscall.ENXIO
	}
	switch whence {
	case unix.SEEK_DATA:
		return off, 0
	case unix.SEEK_HOLE:
		return uint64(size), 0
	}
	return 0, syscall.EINVAL
}

// Fsync sleeps the configured delay, then writes the overlay back and syncs
// the backing file. When the filesystem is full and there is dirty data it
// fails with ENOSPC and writes nothing.
func (h *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if d := h.ffs.fsyncDelay(); d > 0 {
		time.Sleep(d)
	}
	if e := h.ffs.enter(); e != 0 {
		return e
	}
	defer h.ffs.leave()
	o := h.ffs.overlay(h.ino, true)
	o.mu.Lock()
	dirty := o.dirty
	o.mu.Unlock()
	if dirty && h.ffs.isFullForFlush() && !h.flushFits(o) {
		return syscall.ENOSPC
	}
	released, err := o.flush(h.fd, flags&1 != 0)
	h.ffs.account(-released)
	if err != nil {
		return toErrno(err)
	}
	h.ffs.mu.Lock()
	h.ffs.syncs++
	h.ffs.mu.Unlock()
	return 0
}

// logicalSize is the file's size as its writers see it: the backing file's,
// or larger by data written but not yet synced.
// overwrites reports whether a write of n bytes at off may pass although
// the filesystem is full: SetOverwriteWhenFull is on and the write lies
// wholly inside the file's current size.
func (h *file) overwrites(off int64, n int) bool {
	if !h.ffs.overwriteWhenFull() {
		return false
	}
	size, err := h.logicalSize()
	return err == nil && off+int64(n) <= size
}

// flushFits reports whether writing o back may pass although the filesystem
// is full: SetOverwriteWhenFull is on and o does not grow the backing file.
func (h *file) flushFits(o *overlay) bool {
	if !h.ffs.overwriteWhenFull() {
		return false
	}
	var st syscall.Stat_t
	if syscall.Fstat(h.fd, &st) != nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size <= st.Size
}

func (h *file) logicalSize() (int64, error) {
	o := h.ffs.overlay(h.ino, true)
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.logicalSize(h.fd)
}
