package fsstate

import (
	"errors"
	"slices"
	"syscall"
	"testing"
)

func rename(vol, dir uint64, name string, toDir uint64, toName string) *Command {
	return &Command{Op: OpRename, Vol: vol, Dir: dir, Name: name, ToDir: toDir, ToName: toName}
}

func TestRenameErrors(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	a := h.mkdir(v.ID, RootIno, "a")
	b := h.mkdir(v.ID, a.Ino, "b")
	c := h.mkdir(v.ID, b.Ino, "c")
	full := h.mkdir(v.ID, RootIno, "full")
	h.file(v.ID, full.Ino, "x")
	h.mkdir(v.ID, RootIno, "empty")
	f := h.file(v.ID, RootIno, "f")
	tests := []struct {
		name string
		c    *Command
		want syscall.Errno
	}{
		{"source missing", rename(v.ID, RootIno, "nope", RootIno, "x"), syscall.ENOENT},
		{"into itself", rename(v.ID, RootIno, "a", a.Ino, "a2"), syscall.EINVAL},
		{"into child", rename(v.ID, RootIno, "a", b.Ino, "a2"), syscall.EINVAL},
		{"into grandchild", rename(v.ID, RootIno, "a", c.Ino, "a2"), syscall.EINVAL},
		{"dir over non-empty dir", rename(v.ID, RootIno, "a", RootIno, "full"), syscall.ENOTEMPTY},
		{"dir over file", rename(v.ID, RootIno, "a", RootIno, "f"), syscall.ENOTDIR},
		{"file over dir", rename(v.ID, RootIno, "f", RootIno, "empty"), syscall.EISDIR},
		{"source dot", rename(v.ID, a.Ino, ".", RootIno, "z"), syscall.EINVAL},
		{"dest dotdot", rename(v.ID, RootIno, "f", a.Ino, ".."), syscall.EINVAL},
		{"dest slash", rename(v.ID, RootIno, "f", a.Ino, "x/y"), syscall.EINVAL},
		{"dest too long", rename(v.ID, RootIno, "f", a.Ino, string(make([]byte, 256))), syscall.ENAMETOOLONG},
		{"dest dir is file", rename(v.ID, RootIno, "f", f.Ino, "g"), syscall.ENOTDIR},
		{"dest dir missing", rename(v.ID, RootIno, "f", 99, "g"), syscall.ESTALE},
		{"source dir missing", rename(v.ID, 99, "f", RootIno, "g"), syscall.ESTALE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { h.t = t; h.fail(tc.c, tc.want) })
	}
}

func TestRenameWithinDir(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("content"))
	before := h.hash()
	h.ok(rename(v.ID, RootIno, "f", RootIno, "f"))
	if h.hash() != before {
		t.Fatal("rename onto itself changed the state")
	}
	r := h.ok(&Command{Op: OpRename, Vol: v.ID, Dir: RootIno, Name: "f", ToDir: RootIno, ToName: "g", Time: 31337})
	if r.Attr.Ctime != 31337 || r.Dir.Post.Mtime != 31337 || r.ToDir.Post.Mtime != 31337 {
		t.Fatalf("times after rename: %+v", r)
	}
	h.noEntry(v.ID, RootIno, "f")
	if g := h.lookup(v.ID, RootIno, "g"); g.Ino != f.Ino {
		t.Fatalf("g is %d", g.Ino)
	}
	if n := h.names(v.ID, RootIno); !slices.Equal(n, []string{"g"}) {
		t.Fatalf("entries %v", n)
	}
}

func TestRenameOverFile(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	src := h.file(v.ID, RootIno, "src")
	h.write(v.ID, src.Ino, 0, []byte("new"))
	victim := h.file(v.ID, d.Ino, "victim")
	h.write(v.ID, victim.Ino, 0, []byte("old data"))
	h.ok(rename(v.ID, RootIno, "src", d.Ino, "victim"))
	if _, err := h.s.GetAttr(v.ID, victim.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("replaced file still exists: %v", err)
	}
	if got := h.lookup(v.ID, d.Ino, "victim"); got.Ino != src.Ino {
		t.Fatalf("victim now %d", got.Ino)
	}
	if vol := h.vol(v.ID); vol.Used != 3 || vol.Inodes != 3 {
		t.Fatalf("volume after replace %+v", vol)
	}
	// A replaced file with another link survives, one link down.
	keep := h.file(v.ID, RootIno, "keep")
	h.ok(&Command{Op: OpLink, Vol: v.ID, Ino: keep.Ino, Dir: RootIno, Name: "keep2"})
	other := h.file(v.ID, RootIno, "other")
	h.ok(rename(v.ID, RootIno, "other", RootIno, "keep"))
	if a := h.attr(v.ID, keep.Ino); a.Nlink != 1 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	if got := h.lookup(v.ID, RootIno, "keep"); got.Ino != other.Ino {
		t.Fatalf("keep now %d", got.Ino)
	}
	// Two links to the same inode: success, nothing changes (POSIX).
	h.ok(&Command{Op: OpLink, Vol: v.ID, Ino: keep.Ino, Dir: d.Ino, Name: "keep3"})
	before := h.hash()
	h.ok(rename(v.ID, RootIno, "keep2", d.Ino, "keep3"))
	if h.hash() != before {
		t.Fatal("rename between links of one inode changed the state")
	}
}

func TestRenameDirectoryAcrossParents(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	a := h.mkdir(v.ID, RootIno, "a")
	b := h.mkdir(v.ID, RootIno, "b")
	m := h.mkdir(v.ID, a.Ino, "m")
	h.file(v.ID, m.Ino, "inside")
	r := h.ok(rename(v.ID, a.Ino, "m", b.Ino, "moved"))
	if r.Dir.Pre.Nlink != 3 || r.Dir.Post.Nlink != 2 || r.ToDir.Pre.Nlink != 2 || r.ToDir.Post.Nlink != 3 {
		t.Fatalf("nlink wcc: %+v / %+v", r.Dir, r.ToDir)
	}
	if got := h.attr(v.ID, m.Ino); got.Parent != b.Ino {
		t.Fatalf("parent %d", got.Parent)
	}
	if got := h.lookup(v.ID, m.Ino, ".."); got.Ino != b.Ino {
		t.Fatalf(".. is %d", got.Ino)
	}
	if got := h.lookup(v.ID, b.Ino, "moved"); got.Ino != m.Ino {
		t.Fatalf("moved is %d", got.Ino)
	}
	h.lookup(v.ID, m.Ino, "inside")
	// Dir over an empty dir in another parent: the empty one is freed and the
	// link counts stay right.
	e := h.mkdir(v.ID, a.Ino, "e")
	h.ok(rename(v.ID, b.Ino, "moved", a.Ino, "e"))
	if _, err := h.s.GetAttr(v.ID, e.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("replaced dir: %v", err)
	}
	if na, nb := h.attr(v.ID, a.Ino).Nlink, h.attr(v.ID, b.Ino).Nlink; na != 3 || nb != 2 {
		t.Fatalf("nlink a=%d b=%d", na, nb)
	}
	if got := h.attr(v.ID, m.Ino); got.Parent != a.Ino {
		t.Fatalf("parent %d", got.Parent)
	}
	if vol := h.vol(v.ID); vol.Inodes != 5 {
		t.Fatalf("inodes %d", vol.Inodes)
	}
	// Moving a directory up to an ancestor is fine.
	h.ok(rename(v.ID, a.Ino, "e", RootIno, "top"))
	if got := h.attr(v.ID, RootIno); got.Nlink != 5 {
		t.Fatalf("root nlink %d", got.Nlink)
	}
	// Dir over empty dir in the same parent.
	h.mkdir(v.ID, RootIno, "empty")
	h.ok(rename(v.ID, RootIno, "top", RootIno, "empty"))
	if got := h.attr(v.ID, RootIno); got.Nlink != 5 {
		t.Fatalf("root nlink %d after same-dir replace", got.Nlink)
	}
	if n := h.names(v.ID, RootIno); !slices.Equal(n, []string{"a", "b", "empty"}) {
		t.Fatalf("root entries %v", n)
	}
}

func TestRenameNewCookie(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	h.file(v.ID, RootIno, "x")
	h.file(v.ID, RootIno, "y")
	ents, _, _ := h.s.ReadDir(v.ID, RootIno, 0, 0)
	h.ok(rename(v.ID, RootIno, "x", RootIno, "z"))
	after, _, _ := h.s.ReadDir(v.ID, RootIno, 0, 0)
	if len(after) != 2 || after[0].Name != "y" || after[1].Name != "z" || after[1].Cookie <= ents[1].Cookie {
		t.Fatalf("before %+v after %+v", ents, after)
	}
}

func TestDirectoryPermissions(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	alice := &Cred{UID: 1000, GID: 1000}
	bob := &Cred{UID: 2000, GID: 2000}
	// /tmp-like sticky world-writable directory, and a private one.
	tmp := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "tmp", Type: TypeDir, Mode: 0o1777}).Attr
	priv := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "priv", Type: TypeDir, Mode: 0o700, UID: 1000, GID: 1000}).Attr
	ro := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "ro", Type: TypeDir, Mode: 0o555, UID: 1000}).Attr
	mk := func(cr *Cred, dir uint64, name string, typ FileType) *Command {
		return &Command{Op: OpCreate, Vol: v.ID, Dir: dir, Name: name, Type: typ, Mode: 0o644, UID: cr.UID, GID: cr.GID, Cred: cr}
	}
	h.ok(mk(alice, tmp.Ino, "alice-file", TypeRegular))
	h.ok(mk(alice, tmp.Ino, "alice-dir", TypeDir))
	h.ok(mk(bob, tmp.Ino, "bob-file", TypeRegular))
	h.ok(mk(alice, priv.Ino, "secret", TypeRegular))

	h.fail(mk(bob, priv.Ino, "x", TypeRegular), syscall.EACCES)
	h.fail(mk(alice, ro.Ino, "x", TypeRegular), syscall.EACCES)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: priv.Ino, Name: "secret", Cred: bob}, syscall.EACCES)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: tmp.Ino, Name: "alice-file", Cred: bob}, syscall.EPERM)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: tmp.Ino, Name: "alice-dir", Cred: bob}, syscall.EPERM)
	h.fail(&Command{Op: OpRename, Vol: v.ID, Dir: tmp.Ino, Name: "alice-file", ToDir: tmp.Ino, ToName: "mine", Cred: bob}, syscall.EPERM)
	h.fail(&Command{Op: OpRename, Vol: v.ID, Dir: tmp.Ino, Name: "bob-file", ToDir: tmp.Ino, ToName: "alice-file", Cred: bob}, syscall.EPERM)
	h.fail(&Command{Op: OpRename, Vol: v.ID, Dir: tmp.Ino, Name: "bob-file", ToDir: priv.Ino, ToName: "b", Cred: bob}, syscall.EACCES)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: h.lookup(v.ID, tmp.Ino, "bob-file").Ino, Dir: priv.Ino, Name: "l", Cred: bob}, syscall.EACCES)
	// Moving a directory to another parent needs write access to it.
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: h.lookup(v.ID, tmp.Ino, "alice-dir").Ino, Cred: alice, Set: SetAttr{Mode: ptr(uint32(0o555))}})
	h.fail(&Command{Op: OpRename, Vol: v.ID, Dir: tmp.Ino, Name: "alice-dir", ToDir: priv.Ino, ToName: "d", Cred: alice}, syscall.EACCES)
	h.ok(&Command{Op: OpRename, Vol: v.ID, Dir: tmp.Ino, Name: "alice-dir", ToDir: tmp.Ino, ToName: "d", Cred: alice})

	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: tmp.Ino, Name: "bob-file", Cred: bob})
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: tmp.Ino, Name: "alice-file", Cred: alice})
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: priv.Ino, Name: "secret", Cred: &Cred{UID: 0}})
	h.ok(&Command{Op: OpRmdir, Vol: v.ID, Dir: tmp.Ino, Name: "d", Cred: &Cred{UID: 0}})
	// Writing needs write permission on the file (the owner always may).
	f := h.ok(mk(alice, tmp.Ino, "f", TypeRegular)).Attr
	h.fail(&Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Data: []byte("x"), Cred: bob}, syscall.EACCES)
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Cred: alice, Set: SetAttr{Mode: ptr(uint32(0o4444))}})
	a := h.ok(&Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Data: []byte("x"), Cred: alice}).Attr
	if a.Mode != 0o444 {
		t.Fatalf("set-user-ID survived an unprivileged write: %o", a.Mode)
	}
}

func TestAccess(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o640, UID: 10, GID: 20}).Attr
	x := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "x", Type: TypeRegular, Mode: 0o001, UID: 10, GID: 20}).Attr
	tests := []struct {
		ino     uint64
		cred    *Cred
		r, w, e bool
	}{
		{f.Ino, &Cred{UID: 10, GID: 99}, true, true, false},
		{f.Ino, &Cred{UID: 11, GID: 20}, true, false, false},
		{f.Ino, &Cred{UID: 11, GID: 99, GIDs: []uint32{5, 20}}, true, false, false},
		{f.Ino, &Cred{UID: 11, GID: 99}, false, false, false},
		{f.Ino, &Cred{UID: 0}, true, true, false},
		{f.Ino, nil, true, true, true},
		{x.Ino, &Cred{UID: 0}, true, true, true},
		{x.Ino, &Cred{UID: 10}, false, false, false}, // owner bits apply, not other's
		{RootIno, &Cred{UID: 0}, true, true, true},
		{RootIno, &Cred{UID: 5}, true, false, true},
	}
	for i, tc := range tests {
		r, w, e, err := h.s.Access(v.ID, tc.ino, tc.cred)
		if err != nil || r != tc.r || w != tc.w || e != tc.e {
			t.Errorf("#%d: got %v %v %v %v, want %v %v %v", i, r, w, e, err, tc.r, tc.w, tc.e)
		}
	}
	if _, _, _, err := h.s.Access(v.ID, 99, nil); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("Access(missing) = %v", err)
	}
}
