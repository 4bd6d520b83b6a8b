package fsapi

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"

	"keel/internal/fsapi/fsapitest"
	"keel/internal/fsstate"
)

func newFS(t *testing.T) (*FS, *fsapitest.Local) {
	t.Helper()
	st, err := fsstate.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := fsapitest.New(st)
	return New(r), r
}

func TestLargeWriteIsSplitIntoEntries(t *testing.T) {
	fs, r := newFS(t)
	ctx := context.Background()
	v, err := fs.CreateVolume(ctx, "v", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fs.Create(ctx, nil, CreateArgs{Vol: v.ID, Dir: fsstate.RootIno, Name: "big", Type: fsstate.TypeRegular, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	before := r.Entries()
	w, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 10, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Entries() - before; got != 5 {
		t.Fatalf("1 MiB + 123 B went into %d entries, want 5 of at most %d bytes", got, fsstate.MaxEntryData)
	}
	if w.Attr.Size != uint64(len(data))+10 {
		t.Fatalf("size after write %d", w.Attr.Size)
	}
	got, _, err := fs.Read(ctx, v.ID, res.Attr.Ino, 0, uint32(len(data)+10))
	if err != nil || !bytes.Equal(got[10:], data) || !bytes.Equal(got[:10], make([]byte, 10)) {
		t.Fatalf("read back differs (%d bytes, %v)", len(got), err)
	}
}

func TestWriteThatDoesNotFitWritesNothing(t *testing.T) {
	fs, _ := newFS(t)
	ctx := context.Background()
	v, _ := fs.CreateVolume(ctx, "small", 1<<20)
	res, _ := fs.Create(ctx, nil, CreateArgs{Vol: v.ID, Dir: fsstate.RootIno, Name: "f", Type: fsstate.TypeRegular, Mode: 0o644})
	_, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 0, make([]byte, 1<<20+1))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("over-size write: %v, want ENOSPC", err)
	}
	a, _ := fs.GetAttr(ctx, v.ID, res.Attr.Ino)
	vol, _ := fs.Volume(ctx, "small")
	if a.Size != 0 || vol.Used != 0 {
		t.Fatalf("a refused write left size %d, volume use %d", a.Size, vol.Used)
	}
	if _, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 0, make([]byte, 1<<20)); err != nil {
		t.Fatalf("a write that fits exactly: %v", err)
	}
}

func TestErrorsComeBackAsErrno(t *testing.T) {
	fs, _ := newFS(t)
	ctx := context.Background()
	v, _ := fs.CreateVolume(ctx, "v", 1<<20)
	if _, err := fs.CreateVolume(ctx, "v", 1<<20); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate volume: %v", err)
	}
	if _, err := fs.Lookup(ctx, v.ID, fsstate.RootIno, "missing"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lookup of a missing name: %v", err)
	}
	if _, err := fs.Remove(ctx, nil, v.ID, fsstate.RootIno, "missing"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("remove of a missing name: %v", err)
	}
}

func TestOverwriteOnAFullVolume(t *testing.T) {
	fs, _ := newFS(t)
	ctx := context.Background()
	v, _ := fs.CreateVolume(ctx, "full", 1<<20)
	res, _ := fs.Create(ctx, nil, CreateArgs{Vol: v.ID, Dir: fsstate.RootIno, Name: "f", Type: fsstate.TypeRegular, Mode: 0o644})
	if _, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 0, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// The volume is full; rewriting what the file holds needs no space.
	if _, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 0, bytes.Repeat([]byte{7}, 1<<20)); err != nil {
		t.Fatalf("overwrite in place on a full volume: %v", err)
	}
	if _, err := fs.Write(ctx, nil, v.ID, res.Attr.Ino, 1<<20, make([]byte, 300<<10)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("extending a full volume: %v", err)
	}
}
