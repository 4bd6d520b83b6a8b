package fsstate

import (
	"errors"
	"math"
	"syscall"
)

// MaxSymlinkLen is the longest symlink target accepted.
const MaxSymlinkLen = 4096

// maxLink is the highest link count an inode may reach (EMLINK beyond).
const maxLink = math.MaxUint32 - 1

// opCreate creates a regular file, directory or symlink (by Type) named Name
// in directory Dir. An existing name gives EEXIST except for regular files
// created UNCHECKED (the existing file is returned untouched) and an
// EXCLUSIVE create repeated with the same verifier (a retransmission).
//
// Like Linux, a directory with the set-group-ID bit passes its group to new
// entries and the bit to new subdirectories. Symlinks always have mode 0777.
func opCreate(t *txn, c *Command) (Result, error) {
	v, err := t.volume(c.Vol)
	if err != nil {
		return Result{}, err
	}
	d, err := t.dir(c.Vol, c.Dir)
	if err != nil {
		return Result{}, err
	}
	if err := checkNewName(c.Name); err != nil {
		return Result{}, err
	}
	if c.Type != TypeRegular && c.Type != TypeDir && c.Type != TypeSymlink {
		return Result{}, syscall.EINVAL
	}
	if c.CMode > CreateExclusive {
		return Result{}, syscall.EINVAL
	}
	if err := needSearch(d, c.Cred); err != nil {
		return Result{}, err
	}
	pre := d.Attr
	if e, ok, err := t.lookup(c.Vol, c.Dir, c.Name); err != nil {
		return Result{}, err
	} else if ok {
		return createExisting(t, c, d, e)
	}
	if err := needDirWrite(d, c.Cred); err != nil {
		return Result{}, err
	}
	if c.Type == TypeSymlink {
		switch {
		case c.Target == "":
			return Result{}, syscall.ENOENT
		case len(c.Target) > MaxSymlinkLen:
			return Result{}, syscall.ENAMETOOLONG
		}
	}
	if c.Type == TypeDir && d.Nlink >= maxLink {
		return Result{}, syscall.EMLINK
	}

	mode, gid := c.Mode&modePerm, c.GID
	if d.Mode&modeSetGID != 0 {
		gid = d.GID
		if c.Type == TypeDir {
			mode |= modeSetGID
		}
	}
	if c.Type != TypeDir && mode&(modeSetGID|0o010) == modeSetGID|0o010 &&
		!privileged(c.Cred) && !inGroup(c.Cred, gid) {
		mode &^= modeSetGID
	}
	n := &inode{Attr: Attr{
		Vol: c.Vol, Ino: v.NextIno, Gen: v.NextGen, Type: c.Type, Mode: mode, Nlink: 1,
		UID: c.UID, GID: gid, Atime: c.Time, Mtime: c.Time, Ctime: c.Time,
	}}
	v.NextIno++
	v.NextGen++
	v.Inodes++
	switch c.Type {
	case TypeDir:
		n.Nlink = 2
		n.Parent = d.Ino
		n.NextCookie = FirstCookie
		n.setEntries(0)
		d.Nlink++
	case TypeSymlink:
		n.Mode = 0o777
		n.Target = c.Target
		n.Size = uint64(len(c.Target))
	case TypeRegular:
		if c.CMode == CreateExclusive {
			n.HasVerf, n.Verf = true, c.Verf
		}
	}
	d.Mtime, d.Ctime = c.Time, c.Time
	t.addEntry(d, c.Name, n.Ino)
	t.dirty(n)
	t.putVolume(v)
	return Result{Attr: n.Attr, Dir: WCC{Valid: true, Pre: pre, Post: d.Attr}}, nil
}

// createExisting handles a create whose name already exists as entry e.
func createExisting(t *txn, c *Command, d *inode, e dent) (Result, error) {
	if c.Type != TypeRegular || c.CMode == CreateGuarded {
		return Result{}, syscall.EEXIST
	}
	n, err := t.inode(c.Vol, e.Ino)
	if err != nil {
		if errors.Is(err, syscall.ESTALE) {
			return Result{}, ErrCorrupt // an entry naming a missing inode
		}
		return Result{}, err
	}
	if n.Type != TypeRegular {
		return Result{}, syscall.EEXIST
	}
	if c.CMode == CreateExclusive && !(n.HasVerf && n.Verf == c.Verf) {
		return Result{}, syscall.EEXIST
	}
	return Result{Attr: n.Attr, Dir: WCC{Valid: true, Pre: d.Attr, Post: d.Attr}}, nil
}

// opLink adds the name Name in directory Dir for the existing non-directory
// inode Ino (EPERM for directories, as on Linux).
func opLink(t *txn, c *Command) (Result, error) {
	n, err := t.inode(c.Vol, c.Ino)
	if err != nil {
		return Result{}, err
	}
	d, err := t.dir(c.Vol, c.Dir)
	if err != nil {
		return Result{}, err
	}
	if err := checkNewName(c.Name); err != nil {
		return Result{}, err
	}
	if err := needSearch(d, c.Cred); err != nil {
		return Result{}, err
	}
	if _, ok, err := t.lookup(c.Vol, c.Dir, c.Name); err != nil {
		return Result{}, err
	} else if ok {
		return Result{}, syscall.EEXIST
	}
	if err := needDirWrite(d, c.Cred); err != nil {
		return Result{}, err
	}
	if n.Type == TypeDir {
		return Result{}, syscall.EPERM
	}
	if n.Nlink >= maxLink {
		return Result{}, syscall.EMLINK
	}
	pre := d.Attr
	n.Nlink++
	n.Ctime = c.Time
	d.Mtime, d.Ctime = c.Time, c.Time
	t.addEntry(d, c.Name, n.Ino)
	t.dirty(n)
	return Result{Attr: n.Attr, Dir: WCC{Valid: true, Pre: pre, Post: d.Attr}}, nil
}
