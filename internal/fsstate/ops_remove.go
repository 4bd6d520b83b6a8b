package fsstate

import (
	"errors"
	"syscall"
)

// maxDepth bounds the walk up a directory's parents; a longer chain means a
// cycle, which only corruption could create.
const maxDepth = 1 << 20

// entryInode returns the inode an existing entry names; an entry pointing at
// nothing is corruption, not a command error.
func entryInode(t *txn, vol uint64, e dent) (*inode, error) {
	n, err := t.inode(vol, e.Ino)
	if errors.Is(err, syscall.ESTALE) {
		return nil, ErrCorrupt
	}
	return n, err
}

// dropLink takes one link off n, freeing it (and its data) at zero.
func dropLink(t *txn, v *volume, n *inode, now Time) {
	n.Nlink--
	if n.Nlink == 0 {
		t.freeInode(v, n)
		return
	}
	n.Ctime = now
	t.dirty(n)
}

// unlinkTarget resolves Dir/Name for REMOVE and RMDIR and checks that the
// caller may unlink it: search and write permission on the directory and
// the sticky bit. dotErr is the error for "." and "..".
func unlinkTarget(t *txn, c *Command, dotErr error) (*volume, *inode, dent, *inode, error) {
	v, err := t.volume(c.Vol)
	if err != nil {
		return nil, nil, dent{}, nil, err
	}
	d, err := t.dir(c.Vol, c.Dir)
	if err != nil {
		return nil, nil, dent{}, nil, err
	}
	if c.Name == "." || c.Name == ".." {
		return nil, nil, dent{}, nil, dotErr
	}
	if err := checkName(c.Name); err != nil {
		return nil, nil, dent{}, nil, err
	}
	if err := needSearch(d, c.Cred); err != nil {
		return nil, nil, dent{}, nil, err
	}
	e, ok, err := t.lookup(c.Vol, c.Dir, c.Name)
	if err != nil {
		return nil, nil, dent{}, nil, err
	}
	if !ok {
		return nil, nil, dent{}, nil, syscall.ENOENT
	}
	n, err := entryInode(t, c.Vol, e)
	if err != nil {
		return nil, nil, dent{}, nil, err
	}
	if err := needDirWrite(d, c.Cred); err != nil {
		return nil, nil, dent{}, nil, err
	}
	if !stickyAllows(d, n, c.Cred) {
		return nil, nil, dent{}, nil, syscall.EPERM
	}
	return v, d, e, n, nil
}

// opRemove unlinks the non-directory Name from directory Dir (EISDIR for a
// directory, as NFS REMOVE). The inode is freed with its last link.
func opRemove(t *txn, c *Command) (Result, error) {
	v, d, e, n, err := unlinkTarget(t, c, syscall.EISDIR)
	if err != nil {
		return Result{}, err
	}
	if n.Type == TypeDir {
		return Result{}, syscall.EISDIR
	}
	pre := d.Attr
	t.removeEntry(d, c.Name, e)
	d.Mtime, d.Ctime = c.Time, c.Time
	dropLink(t, v, n, c.Time)
	return Result{Attr: n.Attr, Dir: WCC{Valid: true, Pre: pre, Post: d.Attr}}, nil
}

// opRmdir removes the empty directory Name from Dir. "." and ".." give
// EINVAL, a non-directory ENOTDIR, a directory with entries ENOTEMPTY.
func opRmdir(t *txn, c *Command) (Result, error) {
	v, d, e, n, err := unlinkTarget(t, c, syscall.EINVAL)
	if err != nil {
		return Result{}, err
	}
	if n.Type != TypeDir {
		return Result{}, syscall.ENOTDIR
	}
	if n.Entries > 0 {
		return Result{}, syscall.ENOTEMPTY
	}
	pre := d.Attr
	t.removeEntry(d, c.Name, e)
	d.Nlink--
	d.Mtime, d.Ctime = c.Time, c.Time
	t.freeInode(v, n)
	return Result{Attr: n.Attr, Dir: WCC{Valid: true, Pre: pre, Post: d.Attr}}, nil
}

// opRename moves Dir/Name to ToDir/ToName, replacing a compatible existing
// destination (file over file, directory over empty directory). Renaming an
// entry onto itself, or onto another link to the same inode, succeeds and
// changes nothing (POSIX). The destination entry gets a new cookie.
func opRename(t *txn, c *Command) (Result, error) {
	v, err := t.volume(c.Vol)
	if err != nil {
		return Result{}, err
	}
	sd, err := t.dir(c.Vol, c.Dir)
	if err != nil {
		return Result{}, err
	}
	td, err := t.dir(c.Vol, c.ToDir)
	if err != nil {
		return Result{}, err
	}
	for _, name := range []string{c.Name, c.ToName} {
		if name == "." || name == ".." {
			return Result{}, syscall.EINVAL
		}
		if err := checkName(name); err != nil {
			return Result{}, err
		}
	}
	if err := needSearch(sd, c.Cred); err != nil {
		return Result{}, err
	}
	if err := needSearch(td, c.Cred); err != nil {
		return Result{}, err
	}
	se, ok, err := t.lookup(c.Vol, c.Dir, c.Name)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, syscall.ENOENT
	}
	src, err := entryInode(t, c.Vol, se)
	if err != nil {
		return Result{}, err
	}
	unchanged := Result{Attr: src.Attr, Dir: WCC{Valid: true, Pre: sd.Attr, Post: sd.Attr},
		ToDir: WCC{Valid: true, Pre: td.Attr, Post: td.Attr}}
	if c.Dir == c.ToDir && c.Name == c.ToName {
		return unchanged, nil
	}
	de, dok, err := t.lookup(c.Vol, c.ToDir, c.ToName)
	if err != nil {
		return Result{}, err
	}
	var dst *inode
	if dok {
		if dst, err = entryInode(t, c.Vol, de); err != nil {
			return Result{}, err
		}
	}
	if err := renameAllowed(t, c, sd, td, src, dst); err != nil {
		return Result{}, err
	}
	if dst != nil && dst.Ino == src.Ino {
		return unchanged, nil
	}

	preS, preT := sd.Attr, td.Attr
	t.removeEntry(sd, c.Name, se)
	if dst != nil {
		t.removeEntry(td, c.ToName, de)
		if dst.Type == TypeDir {
			td.Nlink--
			t.freeInode(v, dst)
		} else {
			dropLink(t, v, dst, c.Time)
		}
	}
	t.addEntry(td, c.ToName, src.Ino)
	if src.Type == TypeDir && c.Dir != c.ToDir {
		src.Parent = td.Ino
		sd.Nlink--
		td.Nlink++
	}
	src.Ctime = c.Time
	sd.Mtime, sd.Ctime = c.Time, c.Time
	td.Mtime, td.Ctime = c.Time, c.Time
	t.dirty(src, sd, td)
	return Result{Attr: src.Attr, Dir: WCC{Valid: true, Pre: preS, Post: sd.Attr},
		ToDir: WCC{Valid: true, Pre: preT, Post: td.Attr}}, nil
}

// renameAllowed checks permissions and type compatibility of a rename of src
// (in sd) over dst (in td, nil if the destination name is free).
func renameAllowed(t *txn, c *Command, sd, td, src, dst *inode) error {
	if err := needDirWrite(sd, c.Cred); err != nil {
		return err
	}
	if err := needDirWrite(td, c.Cred); err != nil {
		return err
	}
	if !stickyAllows(sd, src, c.Cred) {
		return syscall.EPERM
	}
	if dst != nil && dst.Ino == src.Ino {
		return nil
	}
	if dst != nil && !stickyAllows(td, dst, c.Cred) {
		return syscall.EPERM
	}
	if src.Type != TypeDir {
		if dst != nil && dst.Type == TypeDir {
			return syscall.EISDIR
		}
		return nil
	}
	if c.Dir != c.ToDir {
		// Moving a directory rewrites its "..": Linux wants write access to it.
		if _, w, _ := access(&src.Attr, c.Cred); !w {
			return syscall.EACCES
		}
	}
	if err := notInSubtree(t, td, src.Ino); err != nil {
		return err
	}
	if dst != nil {
		if dst.Type != TypeDir {
			return syscall.ENOTDIR
		}
		if dst.Entries > 0 {
			return syscall.ENOTEMPTY
		}
	} else if c.Dir != c.ToDir && td.Nlink >= maxLink {
		return syscall.EMLINK
	}
	return nil
}

// notInSubtree fails with EINVAL if directory d is ino or lies below it.
func notInSubtree(t *txn, d *inode, ino uint64) error {
	p := d
	for range maxDepth {
		if p.Ino == ino {
			return syscall.EINVAL
		}
		if p.Ino == RootIno {
			return nil
		}
		next, err := t.inode(p.Vol, p.Parent)
		if err != nil {
			if errors.Is(err, syscall.ESTALE) {
				return ErrCorrupt
			}
			return err
		}
		p = next
	}
	return ErrCorrupt
}
