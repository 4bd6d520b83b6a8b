package fsstate

import (
	"errors"
	"syscall"
)

// MaxVolumeNameLen is the longest volume name accepted.
const MaxVolumeNameLen = 64

// ValidVolumeName reports whether name may name a volume: 1 to 64 characters
// from [a-zA-Z0-9._-], not starting with '.' or '-'.
func ValidVolumeName(name string) bool {
	if name == "" || len(name) > MaxVolumeNameLen || name[0] == '.' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '.' || ch == '_' || ch == '-'
		if !ok {
			return false
		}
	}
	return true
}

// opCreateVolume creates volume VolName with limit SizeLimit and its root
// directory, exported with DefaultExport. Volume ids come from a counter in the state and are never reused.
func opCreateVolume(t *txn, c *Command) (Result, error) {
	if !privileged(c.Cred) {
		return Result{}, syscall.EPERM
	}
	if !ValidVolumeName(c.VolName) || c.SizeLimit == 0 {
		return Result{}, syscall.EINVAL
	}
	if _, err := t.volumeByName(c.VolName); err == nil {
		return Result{}, syscall.EEXIST
	} else if !errors.Is(err, syscall.ENOENT) {
		return Result{}, err
	}
	id := uint64(1)
	if b, ok, err := t.get(keyNextVol); err != nil {
		return Result{}, err
	} else if ok {
		if len(b) != 8 {
			return Result{}, ErrCorrupt
		}
		id = beUint64(b)
	}
	v := &volume{
		Volume: Volume{ID: id, Name: c.VolName, SizeLimit: c.SizeLimit, Inodes: 1, Created: c.Time,
			Export: DefaultExport()},
		NextIno: RootIno + 1,
		NextGen: 2,
	}
	root := &inode{
		Attr: Attr{
			Vol: id, Ino: RootIno, Gen: 1, Type: TypeDir, Mode: 0o755, Nlink: 2,
			Atime: c.Time, Mtime: c.Time, Ctime: c.Time, Parent: RootIno,
		},
		NextCookie: FirstCookie,
	}
	root.setEntries(0)
	t.set(keyNextVol, be(nil, id+1))
	t.set(nameKey(c.VolName), be(nil, id))
	t.putVolume(v)
	t.dirty(root)
	return Result{Volume: v.Volume, Attr: root.Attr}, nil
}

// opResizeVolume sets a volume's SizeLimit. A limit below the bytes already
// used is refused with EINVAL (nothing would be freed by accepting it, and
// every later write would fail with ENOSPC); a zero limit is EINVAL too.
func opResizeVolume(t *txn, c *Command) (Result, error) {
	if !privileged(c.Cred) {
		return Result{}, syscall.EPERM
	}
	v, err := t.volumeByName(c.VolName)
	if err != nil {
		return Result{}, err
	}
	if c.SizeLimit == 0 || c.SizeLimit < v.Used {
		return Result{}, syscall.EINVAL
	}
	v.SizeLimit = c.SizeLimit
	t.putVolume(v)
	return Result{Volume: v.Volume}, nil
}

// opDeleteVolume deletes a volume and everything in it, its snapshots
// included. Unless Force is set it is refused with ENOTEMPTY while the root
// directory has entries.
func opDeleteVolume(t *txn, c *Command) (Result, error) {
	if !privileged(c.Cred) {
		return Result{}, syscall.EPERM
	}
	v, err := t.volumeByName(c.VolName)
	if err != nil {
		return Result{}, err
	}
	root, err := t.inode(v.ID, RootIno)
	if err != nil {
		if errors.Is(err, syscall.ESTALE) {
			return Result{}, ErrCorrupt
		}
		return Result{}, err
	}
	if root.Entries > 0 && !c.Force {
		return Result{}, syscall.ENOTEMPTY
	}
	for _, p := range append(volPrefixes[:], pSnap) {
		start := be([]byte{p}, v.ID)
		t.delRange(start, prefixEnd(start))
	}
	t.drops = append(t.drops, snapID{vol: v.ID}) // all of them
	t.del(nameKey(v.Name))
	t.deleteVolume(v)
	return Result{Volume: v.Volume}, nil
}
