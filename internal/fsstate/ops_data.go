package fsstate

import (
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// MaxFileSize is the largest file size (and write end offset) accepted;
// beyond it writes and truncates fail with EFBIG.
const MaxFileSize = 1 << 62

// regular returns the inode if it is a regular file: EISDIR for a
// directory, EINVAL for anything else.
func regular(t *txn, vol, ino uint64) (*inode, error) {
	n, err := t.inode(vol, ino)
	if err != nil {
		return nil, err
	}
	switch n.Type {
	case TypeRegular:
		return n, nil
	case TypeDir:
		return nil, syscall.EISDIR
	}
	return nil, syscall.EINVAL
}

// opWrite writes Data at Offset into regular file Ino. Touched chunks are
// read, patched and rewritten whole; chunks store data up to their last
// written byte, so holes use no space. If the bytes newly stored would take
// the volume past its limit the write fails with ENOSPC and writes nothing.
func opWrite(t *txn, c *Command) (Result, error) {
	v, err := t.volume(c.Vol)
	if err != nil {
		return Result{}, err
	}
	n, err := regular(t, c.Vol, c.Ino)
	if err != nil {
		return Result{}, err
	}
	end := c.Offset + uint64(len(c.Data))
	if end < c.Offset || end > MaxFileSize {
		return Result{}, syscall.EFBIG
	}
	if err := needWriteData(n, c.Cred); err != nil {
		return Result{}, err
	}
	pre := n.Attr
	if len(c.Data) == 0 {
		return Result{Attr: n.Attr, Obj: WCC{Valid: true, Pre: pre, Post: n.Attr}}, nil
	}
	first, last := c.Offset/ChunkSize, (end-1)/ChunkSize
	stored, err := chunkLens(t, c.Vol, c.Ino, first, last)
	if err != nil {
		return Result{}, err
	}
	var grown uint64
	for idx := first; idx <= last; idx++ {
		base := idx * ChunkSize
		lo := max(c.Offset, base) - base
		hi := min(end, base+ChunkSize) - base
		part := c.Data[base+lo-c.Offset : base+hi-c.Offset]
		key := chunkKey(c.Vol, c.Ino, idx)
		oldLen := stored[idx-first]
		var val []byte
		if lo == 0 && hi >= oldLen {
			val = part // replaces the whole stored chunk: no need to read it
		} else {
			old, _, err := t.get(key)
			if err != nil {
				return Result{}, err
			}
			val = make([]byte, max(uint64(len(old)), hi))
			copy(val, old)
			copy(val[lo:], part)
		}
		grown += uint64(len(val)) - oldLen
		t.set(key, val)
	}
	if grown > 0 && (v.Used+grown > v.SizeLimit || v.Used+grown < v.Used) {
		return Result{}, syscall.ENOSPC
	}
	n.Used += grown
	v.Used += grown
	n.Size = max(n.Size, end)
	n.Mtime, n.Ctime = c.Time, c.Time
	killPriv(n, c.Cred)
	t.dirty(n)
	t.putVolume(v)
	return Result{Attr: n.Attr, Obj: WCC{Valid: true, Pre: pre, Post: n.Attr}}, nil
}

// opSetAttr changes the attributes selected in Set. With a Guard, it fails
// with ErrNotSync unless the guard equals the current ctime. Only the owner
// (or root) may chmod; only root may give a file away; the owner may change
// the group to one of his groups. Truncating needs write access. Setting
// times needs ownership, or write access when both times given equal the
// command's time (the NFS "set to server time" case).
//
// As on Linux: ctime is set whenever anything is set; a size change sets
// mtime; a chown of a non-directory clears set-user-ID (and set-group-ID if
// group-executable) unless the mode is set in the same command; chmod by a
// caller outside the file's group clears set-group-ID.
func opSetAttr(t *txn, c *Command) (Result, error) {
	v, err := t.volume(c.Vol)
	if err != nil {
		return Result{}, err
	}
	n, err := t.inode(c.Vol, c.Ino)
	if err != nil {
		return Result{}, err
	}
	if c.Guard != nil && *c.Guard != n.Ctime {
		return Result{}, ErrNotSync
	}
	if err := setAttrAllowed(c, n); err != nil {
		return Result{}, err
	}
	s, cr := c.Set, c.Cred
	pre := n.Attr
	if s.Size != nil {
		if *s.Size != n.Size {
			if err := truncate(t, v, n, *s.Size); err != nil {
				return Result{}, err
			}
			n.Mtime = c.Time
			killPriv(n, cr)
		}
	}
	if s.UID != nil {
		n.UID = *s.UID
	}
	if s.GID != nil {
		n.GID = *s.GID
	}
	if s.Mode != nil {
		n.Mode = *s.Mode & modePerm
		if !privileged(cr) && !inGroup(cr, n.GID) {
			n.Mode &^= modeSetGID
		}
	} else if (s.UID != nil || s.GID != nil) && n.Type != TypeDir {
		n.Mode &^= modeSetUID
		if n.Mode&0o010 != 0 {
			n.Mode &^= modeSetGID
		}
	}
	if s.Atime != nil {
		n.Atime = *s.Atime
	}
	if s.Mtime != nil {
		n.Mtime = *s.Mtime
	}
	if s.Mode != nil || s.UID != nil || s.GID != nil || s.Size != nil || s.Atime != nil || s.Mtime != nil {
		n.Ctime = c.Time
		t.dirty(n)
	}
	return Result{Attr: n.Attr, Obj: WCC{Valid: true, Pre: pre, Post: n.Attr}}, nil
}

// chunkLens returns the stored lengths of chunks first..last of an inode
// (0 for holes) without reading their values, which Pebble may keep in blob
// files. The command must not have written any of them yet.
func chunkLens(t *txn, vol, ino, first, last uint64) ([]uint64, error) {
	lens := make([]uint64, last-first+1)
	it, err := t.b.NewIter(&pebble.IterOptions{
		LowerBound: chunkKey(vol, ino, first),
		UpperBound: chunkKey(vol, ino, last+1),
	})
	if err != nil {
		return nil, storageErr("iterate chunks", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 25 {
			continue
		}
		if idx := beUint64(k[17:]); idx >= first && idx <= last {
			lv := it.LazyValue()
			lens[idx-first] = uint64(lv.Len())
		}
	}
	if err := it.Close(); err != nil {
		return nil, storageErr("iterate chunks", err)
	}
	return lens, nil
}

// setAttrAllowed checks the type and permission rules of a SetAttr.
func setAttrAllowed(c *Command, n *inode) error {
	s, cr := c.Set, c.Cred
	if s.Size != nil {
		switch {
		case n.Type == TypeDir:
			return syscall.EISDIR
		case n.Type != TypeRegular:
			return syscall.EINVAL
		case *s.Size > MaxFileSize:
			return syscall.EFBIG
		}
	}
	if privileged(cr) {
		return nil
	}
	owner := cr.UID == n.UID
	if s.Mode != nil && !owner {
		return syscall.EPERM
	}
	if s.UID != nil && (!owner || *s.UID != n.UID) {
		return syscall.EPERM
	}
	if s.GID != nil && (!owner || *s.GID != n.GID && !inGroup(cr, *s.GID)) {
		return syscall.EPERM
	}
	if s.Size != nil {
		if err := needWriteData(n, cr); err != nil {
			return err
		}
	}
	if (s.Atime != nil || s.Mtime != nil) && !owner {
		now := (s.Atime == nil || *s.Atime == c.Time) && (s.Mtime == nil || *s.Mtime == c.Time)
		if !now {
			return syscall.EPERM
		}
		if _, w, _ := access(&n.Attr, cr); !w {
			return syscall.EACCES
		}
	}
	return nil
}

// truncate sets a regular file's size. Growing leaves a hole; shrinking
// drops the chunks past the new end and trims the one it falls in.
func truncate(t *txn, v *volume, n *inode, size uint64) error {
	if size >= n.Size {
		n.Size = size
		return nil
	}
	keep := (size + ChunkSize - 1) / ChunkSize // first chunk dropped whole
	start := chunkKey(n.Vol, n.Ino, keep)
	end := prefixEnd(start[:17])
	// The command has written no chunk yet, so the batch view is current.
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return storageErr("iterate chunks", err)
	}
	var freed uint64
	for ok := it.First(); ok; ok = it.Next() {
		lv := it.LazyValue()
		freed += uint64(lv.Len())
	}
	if err := it.Close(); err != nil {
		return storageErr("iterate chunks", err)
	}
	t.delRange(start, end)
	if r := size % ChunkSize; r != 0 {
		key := chunkKey(n.Vol, n.Ino, size/ChunkSize)
		old, ok, err := t.get(key)
		if err != nil {
			return err
		}
		if ok && uint64(len(old)) > r {
			freed += uint64(len(old)) - r
			t.set(key, old[:r])
		}
	}
	n.Used -= freed
	v.Used -= freed
	n.Size = size
	t.putVolume(v)
	return nil
}
