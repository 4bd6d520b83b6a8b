package fsstate

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestCreateTypes(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	r := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular,
		Mode: 0o100644, UID: 1000, GID: 100, Time: 500})
	f := r.Attr
	want := Attr{Vol: v.ID, Ino: 2, Gen: 2, Type: TypeRegular, Mode: 0o644, Nlink: 1, UID: 1000, GID: 100,
		Atime: 500, Mtime: 500, Ctime: 500}
	if f != want {
		t.Fatalf("file\n got %+v\nwant %+v", f, want)
	}
	if !r.Dir.Valid || r.Dir.Post.Mtime != 500 || r.Dir.Post.Ctime != 500 || r.Dir.Pre.Mtime == 500 {
		t.Fatalf("dir wcc %+v", r.Dir)
	}
	if got := h.lookup(v.ID, RootIno, "f"); got != f {
		t.Fatalf("lookup %+v", got)
	}

	d := h.mkdir(v.ID, RootIno, "d")
	if d.Ino != 3 || d.Gen != 3 || d.Nlink != 2 || d.Parent != RootIno || d.Size != 4096 || d.Type != TypeDir {
		t.Fatalf("dir %+v", d)
	}
	if root := h.attr(v.ID, RootIno); root.Nlink != 3 {
		t.Fatalf("root nlink %d after mkdir", root.Nlink)
	}
	if got := h.lookup(v.ID, d.Ino, ".."); got.Ino != RootIno {
		t.Fatalf("d/.. = %d", got.Ino)
	}
	if got := h.lookup(v.ID, d.Ino, "."); got.Ino != d.Ino {
		t.Fatalf("d/. = %d", got.Ino)
	}

	target := "../some/where"
	l := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: d.Ino, Name: "l", Type: TypeSymlink, Target: target, Mode: 0o600}).Attr
	if l.Type != TypeSymlink || l.Size != uint64(len(target)) || l.Mode != 0o777 || l.Nlink != 1 {
		t.Fatalf("symlink %+v", l)
	}
	if got, err := h.s.Readlink(v.ID, l.Ino); err != nil || got != target {
		t.Fatalf("Readlink = %q, %v", got, err)
	}
	if _, err := h.s.Readlink(v.ID, f.Ino); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Readlink(file) = %v", err)
	}
	if vol := h.vol(v.ID); vol.Inodes != 4 {
		t.Fatalf("inodes %d", vol.Inodes)
	}
	if _, err := h.s.Lookup(v.ID, f.Ino, "x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("Lookup in file: %v", err)
	}
	if _, err := h.s.Lookup(v.ID, 99, "x"); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("Lookup in missing dir: %v", err)
	}
	if _, err := h.s.GetAttr(77, 1); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("GetAttr unknown volume: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.mkdir(v.ID, RootIno, "d")
	mk := func(dir uint64, name string, typ FileType) *Command {
		return &Command{Op: OpCreate, Vol: v.ID, Dir: dir, Name: name, Type: typ, Mode: 0o644}
	}
	tests := []struct {
		name string
		c    *Command
		want syscall.Errno
	}{
		{"empty name", mk(RootIno, "", TypeRegular), syscall.EINVAL},
		{"dot", mk(RootIno, ".", TypeDir), syscall.EEXIST},
		{"dotdot", mk(RootIno, "..", TypeRegular), syscall.EEXIST},
		{"slash", mk(RootIno, "a/b", TypeRegular), syscall.EINVAL},
		{"nul", mk(RootIno, "a\x00b", TypeRegular), syscall.EINVAL},
		{"too long", mk(RootIno, strings.Repeat("n", MaxNameLen+1), TypeRegular), syscall.ENAMETOOLONG},
		{"parent is file", mk(f.Ino, "x", TypeRegular), syscall.ENOTDIR},
		{"parent missing", mk(99, "x", TypeRegular), syscall.ESTALE},
		{"volume missing", &Command{Op: OpCreate, Vol: 9, Dir: RootIno, Name: "x", Type: TypeRegular}, syscall.ESTALE},
		{"bad type", mk(RootIno, "x", 9), syscall.EINVAL},
		{"bad create mode", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "x", Type: TypeRegular, CMode: 3}, syscall.EINVAL},
		{"mkdir existing", mk(RootIno, "f", TypeDir), syscall.EEXIST},
		{"symlink existing", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "d", Type: TypeSymlink, Target: "x"}, syscall.EEXIST},
		{"guarded existing", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, CMode: CreateGuarded}, syscall.EEXIST},
		{"unchecked over dir", mk(RootIno, "d", TypeRegular), syscall.EEXIST},
		{"exclusive no verifier", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, CMode: CreateExclusive, Verf: 1}, syscall.EEXIST},
		{"symlink empty", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "s", Type: TypeSymlink}, syscall.ENOENT},
		{"symlink long", &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "s", Type: TypeSymlink, Target: strings.Repeat("t", MaxSymlinkLen+1)}, syscall.ENAMETOOLONG},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { h.t = t; h.fail(tc.c, tc.want) })
	}
	h.t = t
	h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: strings.Repeat("n", MaxNameLen), Type: TypeRegular})
	h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "s", Type: TypeSymlink, Target: strings.Repeat("t", MaxSymlinkLen)})
}

func TestCreateExistingModes(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("data"))
	f = h.attr(v.ID, f.Ino)
	before := h.hash()
	// UNCHECKED on an existing file returns it untouched.
	r := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o600})
	if r.Attr != f {
		t.Fatalf("unchecked create returned %+v, want %+v", r.Attr, f)
	}
	if h.hash() != before {
		t.Fatal("unchecked create of an existing file changed the state")
	}
	// EXCLUSIVE: a retransmission with the same verifier succeeds.
	ex := &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "e", Type: TypeRegular, CMode: CreateExclusive, Verf: 0xdeadbeef}
	first := h.ok(ex).Attr
	again := *ex
	again.Time = 0
	if got := h.ok(&again).Attr; got != first {
		t.Fatalf("retransmitted exclusive create returned %+v, want %+v", got, first)
	}
	h.fail(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "e", Type: TypeRegular, CMode: CreateExclusive, Verf: 0xdeadbeee}, syscall.EEXIST)
	h.fail(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "e", Type: TypeRegular, CMode: CreateGuarded}, syscall.EEXIST)
	if vol := h.vol(v.ID); vol.Inodes != 3 {
		t.Fatalf("inodes %d, want 3", vol.Inodes)
	}
}

func TestInodeNumbersNeverReused(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	a := h.file(v.ID, RootIno, "a")
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "a"})
	b := h.file(v.ID, RootIno, "a")
	if b.Ino == a.Ino || b.Gen == a.Gen {
		t.Fatalf("reused: %d/%d then %d/%d", a.Ino, a.Gen, b.Ino, b.Gen)
	}
	if _, err := h.s.GetAttr(v.ID, a.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("removed inode: %v", err)
	}
	// Numbers are per volume.
	w := h.volume("w", 1<<30)
	if c := h.file(w.ID, RootIno, "c"); c.Ino != 2 {
		t.Fatalf("first inode of a new volume: %d", c.Ino)
	}
}

func TestSetGIDDirectoryInheritance(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "shared", Type: TypeDir, Mode: 0o2775, GID: 50}).Attr
	f := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: d.Ino, Name: "f", Type: TypeRegular, Mode: 0o644, UID: 1, GID: 1}).Attr
	if f.GID != 50 || f.Mode != 0o644 {
		t.Fatalf("file in setgid dir: gid %d mode %o", f.GID, f.Mode)
	}
	sub := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: d.Ino, Name: "sub", Type: TypeDir, Mode: 0o755, UID: 1, GID: 1}).Attr
	if sub.GID != 50 || sub.Mode != 0o2755 {
		t.Fatalf("dir in setgid dir: gid %d mode %o", sub.GID, sub.Mode)
	}
}

func TestLink(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("shared"))
	r := h.ok(&Command{Op: OpLink, Vol: v.ID, Ino: f.Ino, Dir: d.Ino, Name: "g", Time: 9e18})
	if r.Attr.Nlink != 2 || r.Attr.Ctime != 9e18 || r.Dir.Post.Mtime != 9e18 || r.Dir.Post.Size != 4096 {
		t.Fatalf("link result %+v", r)
	}
	g := h.lookup(v.ID, d.Ino, "g")
	if g.Ino != f.Ino || g.Nlink != 2 {
		t.Fatalf("link target %+v", g)
	}
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: f.Ino, Dir: d.Ino, Name: "g"}, syscall.EEXIST)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: f.Ino, Dir: d.Ino, Name: "."}, syscall.EEXIST)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: d.Ino, Dir: RootIno, Name: "d2"}, syscall.EPERM)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: 99, Dir: RootIno, Name: "x"}, syscall.ESTALE)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: f.Ino, Dir: f.Ino, Name: "x"}, syscall.ENOTDIR)
	h.fail(&Command{Op: OpLink, Vol: v.ID, Ino: f.Ino, Dir: RootIno, Name: strings.Repeat("x", 256)}, syscall.ENAMETOOLONG)

	// Removing one name keeps the data; removing the last frees it.
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "f"})
	if a := h.attr(v.ID, f.Ino); a.Nlink != 1 {
		t.Fatalf("nlink %d after removing one link", a.Nlink)
	}
	if data, _ := h.read(v.ID, f.Ino, 0, 100); string(data) != "shared" {
		t.Fatalf("data after unlink: %q", data)
	}
	if vol := h.vol(v.ID); vol.Used != 6 || vol.Inodes != 3 {
		t.Fatalf("volume %+v", vol)
	}
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "g"})
	if _, err := h.s.GetAttr(v.ID, f.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("inode after last unlink: %v", err)
	}
	if vol := h.vol(v.ID); vol.Used != 0 || vol.Inodes != 2 {
		t.Fatalf("volume %+v", vol)
	}
}

func TestRemoveAndRmdir(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	h.file(v.ID, d.Ino, "f")
	e := h.mkdir(v.ID, RootIno, "e")
	h.file(v.ID, RootIno, "g")

	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "d"}, syscall.EISDIR)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "nope"}, syscall.ENOENT)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: ".."}, syscall.EISDIR)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: ""}, syscall.EINVAL)
	h.fail(&Command{Op: OpRemove, Vol: v.ID, Dir: 99, Name: "g"}, syscall.ESTALE)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "d"}, syscall.ENOTEMPTY)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "g"}, syscall.ENOTDIR)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "."}, syscall.EINVAL)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: d.Ino, Name: ".."}, syscall.EINVAL)
	h.fail(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "nope"}, syscall.ENOENT)

	r := h.ok(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "e", Time: 12345})
	if r.Dir.Pre.Nlink != 4 || r.Dir.Post.Nlink != 3 || r.Dir.Post.Mtime != 12345 {
		t.Fatalf("rmdir wcc %+v", r.Dir)
	}
	if _, err := h.s.GetAttr(v.ID, e.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("removed dir: %v", err)
	}
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "f"})
	h.ok(&Command{Op: OpRmdir, Vol: v.ID, Dir: RootIno, Name: "d"})
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "g"})
	if root := h.attr(v.ID, RootIno); root.Nlink != 2 || root.Size != 4096 {
		t.Fatalf("root %+v", root)
	}
	if vol := h.vol(v.ID); vol.Inodes != 1 {
		t.Fatalf("inodes %d", vol.Inodes)
	}
	if n := h.names(v.ID, RootIno); len(n) != 0 {
		t.Fatalf("entries left: %v", n)
	}
	// The volume can now be deleted without Force.
	h.ok(&Command{Op: OpDeleteVolume, VolName: "v"})
}
