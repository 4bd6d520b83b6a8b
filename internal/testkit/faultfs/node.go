package faultfs

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose file data goes through overlays and whose
// name-creating operations fail when the filesystem is full.
type node struct {
	fs.LoopbackNode
	ffs *FS
}

var (
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
)

// Statfs reports the backing filesystem's figures, with the free space a
// full filesystem or a quota leaves (FS.statfs).
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if e := n.LoopbackNode.Statfs(ctx, out); e != 0 {
		return e
	}
	n.ffs.statfs(out)
	return 0
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// openFlags opens the backing file read-write whatever was asked, so fsync can
// write back through any handle; truncation is done in the overlay.
func openFlags(flags uint32) int {
	f := int(flags) &^ (syscall.O_APPEND | syscall.O_TRUNC | syscall.O_CREAT | syscall.O_EXCL | syscall.O_ACCMODE | fuse.FMODE_EXEC | syscall.O_DIRECT)
	return f | syscall.O_RDWR
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.ffs.enter(); e != 0 {
		return nil, 0, e
	}
	defer n.ffs.leave()
	fd, err := syscall.Open(n.backingPath(), openFlags(flags)|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	h := &file{LoopbackFile: fs.NewLoopbackFile(fd).(*fs.LoopbackFile), fd: fd, ffs: n.ffs, ino: n.StableAttr().Ino}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if e := h.truncate(0); e != 0 {
			h.LoopbackFile.Release(ctx)
			return nil, 0, e
		}
	}
	return h, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := n.ffs.enter(); e != 0 {
		return nil, nil, 0, e
	}
	defer n.ffs.leave()
	if n.ffs.isFull() {
		return nil, nil, 0, syscall.ENOSPC
	}
	keep := flags & (syscall.O_EXCL)
	ch, lh, ff, e := n.LoopbackNode.Create(ctx, name, uint32(openFlags(flags))|keep, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	lf := lh.(*fs.LoopbackFile)
	fd, _ := lf.PassthroughFd()
	h := &file{LoopbackFile: lf, fd: fd, ffs: n.ffs, ino: ch.StableAttr().Ino}
	if flags&syscall.O_TRUNC != 0 {
		if e := h.truncate(0); e != 0 {
			lf.Release(ctx)
			return nil, nil, 0, e
		}
		out.Attr.Size = 0
	}
	return ch, h, ff, 0
}

func (n *node) patchSize(sz *uint64) {
	o := n.ffs.overlay(n.StableAttr().Ino, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	if o.dirty {
		*sz = uint64(o.size)
	}
	o.mu.Unlock()
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*file); ok {
		return h.Getattr(ctx, out)
	}
	if e := n.LoopbackNode.Getattr(ctx, nil, out); e != 0 {
		return e
	}
	n.patchSize(&out.Size)
	return 0
}

func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if e := n.LoopbackNode.Statx(ctx, nil, flags, mask, out); e != 0 {
		return e
	}
	n.patchSize(&out.Size)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*file); ok {
		return h.Setattr(ctx, in, out)
	}
	if _, ok := in.GetSize(); ok {
		// A truncate by path: go through a handle of our own.
		fd, err := syscall.Open(n.backingPath(), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return toErrno(err)
		}
		h := &file{LoopbackFile: fs.NewLoopbackFile(fd).(*fs.LoopbackFile), fd: fd, ffs: n.ffs, ino: n.StableAttr().Ino}
		defer h.LoopbackFile.Release(ctx)
		return h.Setattr(ctx, in, out)
	}
	if e := n.LoopbackNode.Setattr(ctx, nil, in, out); e != 0 {
		return e
	}
	n.patchSize(&out.Size)
	return 0
}

// Fsync writes the overlay back and fsyncs the backing file, after the
// configured delay.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := f.(*file); ok {
		return h.Fsync(ctx, flags)
	}
	// No handle of ours (a directory, or a handle-less fsync): pass through.
	fd, err := syscall.Open(n.backingPath(), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return toErrno(err)
	}
	defer syscall.Close(fd)
	return toErrno(syscall.Fsync(fd))
}

// lastLink returns the backing inode of name in dir if removing it would
// remove its last name.
func lastLink(p string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, false
	}
	return st.Ino, st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink == 1
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.ffs.enter(); e != 0 {
		return e
	}
	defer n.ffs.leave()
	ino, last := lastLink(filepath.Join(n.backingPath(), name))
	if e := n.LoopbackNode.Unlink(ctx, name); e != 0 {
		return e
	}
	if last {
		n.ffs.forget(ino)
	}
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.ffs.enter(); e != 0 {
		return e
	}
	defer n.ffs.leave()
	var ino uint64
	var last bool
	if np, ok := newParent.(*node); ok && flags&unix.RENAME_EXCHANGE == 0 {
		ino, last = lastLink(filepath.Join(np.backingPath(), newName))
		if src, _ := lastLink(filepath.Join(n.backingPath(), name)); src == ino {
			last = false // renaming a name onto another name of the same inode
		}
	}
	if e := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); e != 0 {
		return e
	}
	if last {
		n.ffs.forget(ino)
	}
	return 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.ffs.isFull() {
		return nil, syscall.ENOSPC
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.ffs.isFull() {
		return nil, syscall.ENOSPC
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.ffs.isFull() {
		return nil, syscall.ENOSPC
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.ffs.isFull() {
		return nil, syscall.ENOSPC
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

// CopyFileRange is refused so the kernel and callers copy with reads and
// writes, which go through the overlay.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, l uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// Tmpfile is refused: an O_TMPFILE handle would bypass the overlay.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}
