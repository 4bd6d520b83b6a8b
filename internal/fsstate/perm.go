package fsstate

import (
	"strings"
	"syscall"
)

// Mode bits beyond the rwx triplets.
const (
	modeSetUID = 04000
	modeSetGID = 02000
	modeSticky = 01000
	modePerm   = 07777
)

// privileged reports whether c bypasses permission checks: a nil Cred
// (internal or admin caller) or uid 0. Root squashing is the NFS layer's job.
func privileged(c *Cred) bool { return c == nil || c.UID == 0 }

// inGroup reports whether gid is c's primary or a supplementary group.
func inGroup(c *Cred, gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.GIDs {
		if g == gid {
			return true
		}
	}
	return false
}

// access computes POSIX access of c to an inode with attributes a. Root may
// read and write anything, and execute when any x bit is set or a is a
// directory.
func access(a *Attr, c *Cred) (r, w, x bool) {
	if privileged(c) {
		return true, true, a.Type == TypeDir || a.Mode&0o111 != 0
	}
	var bits uint32
	switch {
	case c.UID == a.UID:
		bits = a.Mode >> 6
	case inGroup(c, a.GID):
		bits = a.Mode >> 3
	default:
		bits = a.Mode
	}
	return bits&4 != 0, bits&2 != 0, bits&1 != 0
}

// needSearch fails with EACCES unless c may search (x) directory d.
func needSearch(d *inode, c *Cred) error {
	if _, _, x := access(&d.Attr, c); !x {
		return syscall.EACCES
	}
	return nil
}

// needDirWrite fails with EACCES unless c may add or remove entries in d
// (write and search permission).
func needDirWrite(d *inode, c *Cred) error {
	if _, w, x := access(&d.Attr, c); !w || !x {
		return syscall.EACCES
	}
	return nil
}

// isOwner reports whether c owns n (or is privileged).
func isOwner(n *inode, c *Cred) bool { return privileged(c) || c.UID == n.UID }

// needWriteData fails with EACCES unless c may change n's data. Like knfsd
// (NFSD_MAY_OWNER_OVERRIDE), the owner may write even without a w bit: an
// NFS client creating a read-only file with open(O_CREAT, 0444) then writes
// to it through the open file.
func needWriteData(n *inode, c *Cred) error {
	if isOwner(n, c) {
		return nil
	}
	if _, w, _ := access(&n.Attr, c); !w {
		return syscall.EACCES
	}
	return nil
}

// stickyAllows reports whether c may remove or replace victim in directory
// d: always, unless d has the sticky bit, in which case only the victim's
// owner, the directory's owner or root may.
func stickyAllows(d, victim *inode, c *Cred) bool {
	if privileged(c) || d.Mode&modeSticky == 0 {
		return true
	}
	return c.UID == victim.UID || c.UID == d.UID
}

// killPriv clears set-user-ID (and set-group-ID if group-executable) after a
// data change by an unprivileged caller, as Linux does on write or truncate.
func killPriv(n *inode, c *Cred) {
	if privileged(c) || n.Type != TypeRegular {
		return
	}
	n.Mode &^= modeSetUID
	if n.Mode&0o010 != 0 {
		n.Mode &^= modeSetGID
	}
}

// checkNewName validates the name of an entry about to be created: EEXIST for
// "." and "..", EINVAL for empty names or names holding '/' or NUL,
// ENAMETOOLONG beyond MaxNameLen.
func checkNewName(name string) error {
	if name == "." || name == ".." {
		return syscall.EEXIST
	}
	return checkName(name)
}

// checkName validates a name to look up (without the "."/".." rule).
func checkName(name string) error {
	switch {
	case name == "":
		return syscall.EINVAL
	case len(name) > MaxNameLen:
		return syscall.ENAMETOOLONG
	case strings.ContainsAny(name, "/\x00"):
		return syscall.EINVAL
	}
	return nil
}
