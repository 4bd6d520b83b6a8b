package fsstate

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
)

func TestWriteRead(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	data := pattern(200_000, 1) // spans four chunks
	r := h.ok(&Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Offset: 1000, Data: data, Time: 777})
	// A chunk stores bytes from its start up to its last written byte.
	if r.Attr.Size != 201_000 || r.Attr.Used != 201_000 || r.Attr.Mtime != 777 || r.Attr.Ctime != 777 {
		t.Fatalf("attr after write %+v", r.Attr)
	}
	if !r.Obj.Valid || r.Obj.Pre.Size != 0 || r.Obj.Post.Size != 201_000 {
		t.Fatalf("wcc %+v", r.Obj)
	}
	if got, eof := h.read(v.ID, f.Ino, 1000, 200_000); !eof {
		t.Fatal("read to the end: eof false")
	} else {
		mustEqualBytes(t, got, data, "read back")
	}
	got, eof := h.read(v.ID, f.Ino, 0, 1500)
	if eof || !bytes.Equal(got[:1000], make([]byte, 1000)) || !bytes.Equal(got[1000:], data[:500]) {
		t.Fatalf("head read: eof=%v", eof)
	}
	// Overwrite across a chunk boundary.
	patch := pattern(10_000, 99)
	h.write(v.ID, f.Ino, ChunkSize-5000, patch)
	want := make([]byte, 201_000)
	copy(want[1000:], data)
	copy(want[ChunkSize-5000:], patch)
	got, _ = h.read(v.ID, f.Ino, 0, 300_000)
	mustEqualBytes(t, got, want, "after overwrite")
	if a := h.attr(v.ID, f.Ino); a.Size != 201_000 || a.Used != 201_000 {
		t.Fatalf("overwrite changed size/used: %+v", a)
	}
	// Reads at and past EOF.
	if got, eof := h.read(v.ID, f.Ino, 201_000, 10); len(got) != 0 || !eof {
		t.Fatalf("read at EOF: %d bytes eof=%v", len(got), eof)
	}
	if got, eof := h.read(v.ID, f.Ino, 1<<40, 10); len(got) != 0 || !eof {
		t.Fatalf("read past EOF: %d bytes eof=%v", len(got), eof)
	}
	if got, eof := h.read(v.ID, f.Ino, 200_990, 100); len(got) != 10 || !eof {
		t.Fatalf("read across EOF: %d bytes eof=%v", len(got), eof)
	}
	if vol := h.vol(v.ID); vol.Used != 201_000 {
		t.Fatalf("volume used %d", vol.Used)
	}
}

func TestWriteEmptyChangesNothing(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	before := h.hash()
	r := h.ok(&Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Offset: 1 << 30})
	if r.Attr != f || h.hash() != before {
		t.Fatalf("empty write changed something: %+v", r.Attr)
	}
}

func TestSparseFile(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "sparse")
	h.write(v.ID, f.Ino, 10*ChunkSize+100, []byte("tail"))
	h.write(v.ID, f.Ino, 3, []byte("head"))
	a := h.attr(v.ID, f.Ino)
	if a.Size != 10*ChunkSize+104 {
		t.Fatalf("size %d", a.Size)
	}
	// Only the bytes up to the last written one in each touched chunk count.
	if a.Used != 7+104 || h.vol(v.ID).Used != 111 {
		t.Fatalf("used %d (volume %d), want 111", a.Used, h.vol(v.ID).Used)
	}
	got, eof := h.read(v.ID, f.Ino, 0, uint32(a.Size))
	if !eof || len(got) != int(a.Size) {
		t.Fatalf("read %d eof=%v", len(got), eof)
	}
	want := make([]byte, a.Size)
	copy(want[3:], "head")
	copy(want[10*ChunkSize+100:], "tail")
	mustEqualBytes(t, got, want, "sparse read")
	// A hole in the middle of a chunk, read alone.
	if got, _ := h.read(v.ID, f.Ino, 5*ChunkSize+7, 1000); !bytes.Equal(got, make([]byte, 1000)) {
		t.Fatal("hole is not zeros")
	}
}

// ReadInto a buffer full of old data reads holes, and the bytes past a
// chunk's stored length, as zeros, like Read.
func TestReadIntoDirtyBuffer(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "sparse")
	h.write(v.ID, f.Ino, 3, []byte("head"))
	h.write(v.ID, f.Ino, 2*ChunkSize+10, pattern(ChunkSize, 9)) // spans chunks 2 and 3
	h.write(v.ID, f.Ino, 6*ChunkSize+100, []byte("tail"))
	size := int(h.attr(v.ID, f.Ino).Size)
	for _, c := range []struct{ off, n int }{{0, size}, {1, 5}, {5, ChunkSize}, {ChunkSize - 1, 3 * ChunkSize}, {4 * ChunkSize, 3 * ChunkSize}, {size - 2, 100}} {
		want, wantEOF := h.read(v.ID, f.Ino, uint64(c.off), uint32(c.n))
		buf := bytes.Repeat([]byte{0xee}, c.n)
		n, eof, err := h.s.ReadInto(v.ID, f.Ino, uint64(c.off), buf)
		if err != nil || eof != wantEOF {
			t.Fatalf("ReadInto(%d, %d): %v eof=%v, want eof=%v", c.off, c.n, err, eof, wantEOF)
		}
		mustEqualBytes(t, buf[:n], want, fmt.Sprintf("ReadInto(%d, %d)", c.off, c.n))
	}
}

func TestTruncate(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	data := pattern(3*ChunkSize+500, 5)
	for off := 0; off < len(data); off += MaxEntryData {
		h.write(v.ID, f.Ino, uint64(off), data[off:min(off+MaxEntryData, len(data))])
	}
	size := func(n uint64) Result {
		return h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Set: SetAttr{Size: &n}})
	}
	// Shrink into the middle of chunk 1.
	r := size(ChunkSize + 10)
	if r.Attr.Size != ChunkSize+10 || r.Attr.Used != ChunkSize+10 || h.vol(v.ID).Used != ChunkSize+10 {
		t.Fatalf("after shrink %+v, volume used %d", r.Attr, h.vol(v.ID).Used)
	}
	if r.Attr.Mtime != r.Attr.Ctime || r.Attr.Mtime == f.Mtime {
		t.Fatalf("shrink did not set mtime/ctime: %+v", r.Attr)
	}
	// Extend: a hole, no space used, old bytes beyond the cut read as zeros.
	r = size(5 * ChunkSize)
	if r.Attr.Size != 5*ChunkSize || r.Attr.Used != ChunkSize+10 {
		t.Fatalf("after extend %+v", r.Attr)
	}
	got, eof := h.read(v.ID, f.Ino, 0, 5*ChunkSize)
	want := make([]byte, 5*ChunkSize)
	copy(want, data[:ChunkSize+10])
	if !eof {
		t.Fatal("eof false")
	}
	mustEqualBytes(t, got, want, "after shrink+extend")
	// Writing past a truncated chunk's end leaves zeros between.
	h.write(v.ID, f.Ino, ChunkSize+20, []byte("z"))
	got, _ = h.read(v.ID, f.Ino, ChunkSize, 21)
	if !bytes.Equal(got[:10], data[ChunkSize:ChunkSize+10]) || !bytes.Equal(got[10:20], make([]byte, 10)) || got[20] != 'z' {
		t.Fatalf("bytes around the old cut: %v", got)
	}
	// Chunk-aligned shrink and shrink to zero.
	r = size(ChunkSize)
	if r.Attr.Used != ChunkSize {
		t.Fatalf("aligned shrink used %d", r.Attr.Used)
	}
	r = size(0)
	if r.Attr.Size != 0 || r.Attr.Used != 0 || h.vol(v.ID).Used != 0 {
		t.Fatalf("truncate to 0: %+v", r.Attr)
	}
	// Same size: no mtime change, but ctime does.
	r = size(0)
	if r.Attr.Mtime != r.Obj.Pre.Mtime || r.Attr.Ctime == r.Obj.Pre.Ctime {
		t.Fatalf("same-size truncate: %+v", r.Obj)
	}
	d := h.mkdir(v.ID, RootIno, "d")
	l := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "l", Type: TypeSymlink, Target: "x"}).Attr
	h.fail(&Command{Op: OpSetAttr, Vol: v.ID, Ino: d.Ino, Set: SetAttr{Size: ptr(uint64(0))}}, syscall.EISDIR)
	h.fail(&Command{Op: OpSetAttr, Vol: v.ID, Ino: l.Ino, Set: SetAttr{Size: ptr(uint64(0))}}, syscall.EINVAL)
	h.fail(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Set: SetAttr{Size: ptr(uint64(MaxFileSize + 1))}}, syscall.EFBIG)
}

func TestWriteErrors(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	d := h.mkdir(v.ID, RootIno, "d")
	l := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "l", Type: TypeSymlink, Target: "f"}).Attr
	w := func(ino, off uint64) *Command {
		return &Command{Op: OpWrite, Vol: v.ID, Ino: ino, Offset: off, Data: []byte("abc")}
	}
	h.fail(w(d.Ino, 0), syscall.EISDIR)
	h.fail(w(l.Ino, 0), syscall.EINVAL)
	h.fail(w(99, 0), syscall.ESTALE)
	h.fail(w(f.Ino, MaxFileSize-2), syscall.EFBIG)
	h.fail(w(f.Ino, ^uint64(0)-1), syscall.EFBIG)
	h.ok(w(f.Ino, MaxFileSize-3))
	h.fail(&Command{Op: OpWrite, Vol: 9, Ino: f.Ino, Data: []byte("x")}, syscall.ESTALE)
	// Data beyond MaxEntryData never decodes: the entry fails with EINVAL.
	h.fail(&Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Data: make([]byte, MaxEntryData+1)}, syscall.EINVAL)
}

func TestENOSPCWritesNothing(t *testing.T) {
	h := newHarness(t)
	v := h.volume("small", 3*ChunkSize)
	f := h.file(v.ID, RootIno, "f")
	g := h.file(v.ID, RootIno, "g")
	h.write(v.ID, f.Ino, 0, pattern(2*ChunkSize, 1))
	// 1.5 chunks more would exceed the limit by half a chunk: nothing lands,
	// not even the part that would have fitted.
	h.fail(&Command{Op: OpWrite, Vol: v.ID, Ino: g.Ino, Data: pattern(ChunkSize+ChunkSize/2, 2)}, syscall.ENOSPC)
	if a := h.attr(v.ID, g.Ino); a.Size != 0 || a.Used != 0 {
		t.Fatalf("partial write: %+v", a)
	}
	// Overwriting stored bytes needs no space, even at the limit.
	h.write(v.ID, f.Ino, 0, pattern(ChunkSize, 3))
	// Exactly filling the volume is allowed; one byte more is not.
	h.write(v.ID, g.Ino, 0, pattern(ChunkSize, 4))
	if vol := h.vol(v.ID); vol.Used != vol.SizeLimit {
		t.Fatalf("used %d of %d", vol.Used, vol.SizeLimit)
	}
	h.fail(&Command{Op: OpWrite, Vol: v.ID, Ino: g.Ino, Offset: ChunkSize, Data: []byte{1}}, syscall.ENOSPC)
	// A sparse write far away only needs its own bytes.
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: g.Ino, Set: SetAttr{Size: ptr(uint64(ChunkSize - 1))}})
	h.write(v.ID, g.Ino, 1<<40, []byte{9})
	if vol := h.vol(v.ID); vol.Used != vol.SizeLimit {
		t.Fatalf("used %d of %d", vol.Used, vol.SizeLimit)
	}
	// Freed space can be used again.
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "f"})
	h.write(v.ID, g.Ino, 0, pattern(2*ChunkSize, 5))
}

func TestSetAttr(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644, UID: 1000, GID: 100}).Attr
	r := h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Time: 5000, Set: SetAttr{
		Mode: ptr(uint32(0o100600)), UID: ptr(uint32(7)), GID: ptr(uint32(8)),
		Atime: ptr(Time(11)), Mtime: ptr(Time(22))}})
	a := r.Attr
	if a.Mode != 0o600 || a.UID != 7 || a.GID != 8 || a.Atime != 11 || a.Mtime != 22 || a.Ctime != 5000 {
		t.Fatalf("after setattr %+v", a)
	}
	if r.Obj.Pre != f || r.Obj.Post != a || h.attr(v.ID, f.Ino) != a {
		t.Fatalf("wcc %+v", r.Obj)
	}
	// Guard.
	h.fail(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Guard: ptr(Time(4999)), Set: SetAttr{Mode: ptr(uint32(0))}}, ErrNotSync)
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Guard: ptr(Time(5000)), Set: SetAttr{Mode: ptr(uint32(0o4755))}})
	// chown clears set-user-ID.
	a = h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Set: SetAttr{UID: ptr(uint32(9))}}).Attr
	if a.Mode != 0o755 {
		t.Fatalf("mode after chown %o", a.Mode)
	}
	// An empty SetAttr changes nothing.
	before := h.hash()
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino})
	if h.hash() != before {
		t.Fatal("empty setattr changed the state")
	}
	h.fail(&Command{Op: OpSetAttr, Vol: v.ID, Ino: 99, Set: SetAttr{Mode: ptr(uint32(0))}}, syscall.ESTALE)
}

func TestSetAttrPermissions(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	owner := &Cred{UID: 1000, GID: 100, GIDs: []uint32{200}}
	other := &Cred{UID: 2000, GID: 100}
	stranger := &Cred{UID: 3000, GID: 300}
	root := &Cred{UID: 0, GID: 0}
	f := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o664, UID: 1000, GID: 100}).Attr
	set := func(cr *Cred, s SetAttr) *Command {
		return &Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Cred: cr, Set: s}
	}
	tests := []struct {
		name string
		c    *Command
		want syscall.Errno
	}{
		{"chmod by non-owner", set(other, SetAttr{Mode: ptr(uint32(0o777))}), syscall.EPERM},
		{"chown away by owner", set(owner, SetAttr{UID: ptr(uint32(2000))}), syscall.EPERM},
		{"chown to self by other", set(other, SetAttr{UID: ptr(uint32(1000))}), syscall.EPERM},
		{"chgrp to foreign group", set(owner, SetAttr{GID: ptr(uint32(300))}), syscall.EPERM},
		{"chgrp by non-owner", set(other, SetAttr{GID: ptr(uint32(100))}), syscall.EPERM},
		{"truncate without write", set(stranger, SetAttr{Size: ptr(uint64(0))}), syscall.EACCES},
		{"explicit times by non-owner", set(other, SetAttr{Mtime: ptr(Time(1))}), syscall.EPERM},
		{"now times without write", &Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Cred: stranger, Time: 42,
			Set: SetAttr{Atime: ptr(Time(42)), Mtime: ptr(Time(42))}}, syscall.EACCES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { h.t = t; h.fail(tc.c, tc.want) })
	}
	h.t = t
	h.ok(set(other, SetAttr{Size: ptr(uint64(10))})) // group 100 may write
	if a := h.attr(v.ID, f.Ino); a.Size != 10 {
		t.Fatalf("size %d", a.Size)
	}
	h.ok(set(owner, SetAttr{Mode: ptr(uint32(0o660))}))
	h.ok(set(owner, SetAttr{UID: ptr(uint32(1000))}))
	h.ok(set(owner, SetAttr{GID: ptr(uint32(200))}))
	h.fail(set(other, SetAttr{Size: ptr(uint64(0))}), syscall.EACCES) // no longer in the group
	// The owner may truncate without a w bit (knfsd's owner override).
	h.ok(set(owner, SetAttr{Mode: ptr(uint32(0o400))}))
	h.ok(set(owner, SetAttr{Size: ptr(uint64(0))}))
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: f.Ino, Cred: owner, Time: 77,
		Set: SetAttr{Atime: ptr(Time(77)), Mtime: ptr(Time(77))}})
	h.ok(set(root, SetAttr{UID: ptr(uint32(5)), GID: ptr(uint32(6)), Mode: ptr(uint32(0o2750))}))
	// Mode set by the owner outside the file's group drops set-group-ID.
	h.ok(set(root, SetAttr{UID: ptr(uint32(1000))}))
	if a := h.ok(set(owner, SetAttr{Mode: ptr(uint32(0o2750))})).Attr; a.Mode != 0o750 {
		t.Fatalf("setgid kept by owner outside the group: %o", a.Mode)
	}
}
