package backup

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
)

func ptr[T any](v T) *T { return &v }

// makeTree fills volume "data" with the cases a backup must carry.
func makeTree(t *testing.T, f *fsapi.FS) *builder {
	b := newVolume(t, f, "data")
	b.mkdir("/a")
	b.mkdir("/a/b")
	b.mkdir("/a/b/c")
	b.mkdir("/z")
	b.file("/empty", nil)
	b.file("/one", []byte{1})
	b.file("/a/exact", pattern("exact", fsstate.ChunkSize))
	b.file("/a/plus1", pattern("plus1", fsstate.ChunkSize+1))
	b.file("/a/b/big", pattern("big", 3<<20+12345))
	b.file("/a/b/big-copy", pattern("big", 3<<20+12345)) // stored once
	// Sparse: data at 10 MiB only; a hole between two pieces; a file
	// that is all hole; explicit zeros (come back as a hole).
	b.file("/sparse", nil)
	b.write("/sparse", 10<<20, []byte("tail"))
	b.file("/holey", pattern("h1", 1000))
	b.write("/holey", 5*fsstate.ChunkSize+7, pattern("h2", 3000))
	b.file("/allhole", nil)
	b.setAttr("/allhole", fsstate.SetAttr{Size: ptr(uint64(7 << 20))})
	b.file("/zeros", make([]byte, 200<<10))
	// Hard links, one name in a directory listed after the first name.
	b.file("/a/b/c/linked", pattern("linked", 100<<10))
	b.link("/a/b/c/linked", "/z/linked2")
	b.link("/a/b/c/linked", "/linked3")
	// Symlinks, and bytes that are not UTF-8 in names and targets.
	b.create("/sym", fsstate.TypeSymlink, 0o777, "a/b/big")
	b.create("/a/dangling", fsstate.TypeSymlink, 0o777, "../nowhere")
	b.file("/a/caf\xe9", []byte("latin-1 name"))
	b.create("/a/odd-link", fsstate.TypeSymlink, 0o777, "\xff\xfe")
	// Modes, owners and times.
	b.file("/secret", []byte("s"))
	b.setAttr("/secret", fsstate.SetAttr{Mode: ptr(uint32(0o4750)), UID: ptr(uint32(0)), GID: ptr(uint32(42)),
		Atime: ptr(fsstate.Time(1_000_000_123)), Mtime: ptr(fsstate.Time(2_000_000_456))})
	b.setAttr("/a/b", fsstate.SetAttr{Mode: ptr(uint32(0o1777)), Mtime: ptr(fsstate.Time(3_000_000_789))})
	b.setAttr("/", fsstate.SetAttr{Mode: ptr(uint32(0o750)), UID: ptr(uint32(7))})
	return b
}

func TestBackupPushRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	makeTree(t, f)
	want := tree(t, f, "data")
	src, _ := f.Volume(ctx, "data")
	st := newMemStore()
	res, err := PushVolume(ctx, f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) > 0 {
		t.Fatalf("warnings: %v", res.Warnings)
	}
	if snaps, _ := f.Snapshots(ctx, "data"); len(snaps) != 0 {
		t.Errorf("the temporary snapshot is left: %+v", snaps)
	}
	if _, ok := st.objs[res.Key]; !ok || len(st.keys(lockPrefix)) != 0 {
		t.Fatalf("after a push: manifest %s present %v, locks %v", res.Key, ok, st.keys(lockPrefix))
	}
	// Stored once: distinct non-zero chunks only.
	if got := int64(len(st.keys(chunkPrefix))); got != res.ChunksUploaded || got != res.Totals.Distinct {
		t.Errorf("%d chunk objects, %d uploaded, %d distinct", got, res.ChunksUploaded, res.Totals.Distinct)
	}
	if res.BytesUploaded != res.Totals.DistinctB || res.Totals.DistinctB >= res.Totals.DataBytes {
		t.Errorf("uploaded %d, distinct %d, data %d: the copy of big should be stored once",
			res.BytesUploaded, res.Totals.DistinctB, res.Totals.DataBytes)
	}
	// /holey's first chunk runs to the chunk's end (zeros after 1000 bytes
	// of data), its second from the chunk's start.
	wantData := uint64(1 + fsstate.ChunkSize + fsstate.ChunkSize + 1 + 2*(3<<20+12345) + 4 + fsstate.ChunkSize + 3007 + 100<<10 + len("latin-1 name") + 1)
	if res.Totals.DataBytes != wantData {
		t.Errorf("data bytes %d, want %d (holes and zeros not stored)", res.Totals.DataBytes, wantData)
	}
	if res.Totals.HardLinks != 2 || res.Totals.Symlinks != 3 || res.Totals.Dirs != 5 {
		t.Errorf("totals %+v", res.Totals)
	}

	m, err := Find(ctx, st, "", "")
	if err != nil || m.ID != res.ID {
		t.Fatalf("find latest: %v (%v)", m, err)
	}
	rr, err := Restore(ctx, f, st, m, "copy", 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, tree(t, f, "copy"))
	// The same space as the source, less the explicit zeros (now a hole).
	v, _ := f.Volume(ctx, "copy")
	if v.Used != src.Used-200<<10 || rr.BytesWritten != v.Used || v.SizeLimit != 1<<30 {
		t.Errorf("restored volume: used %d (source %d), written %d, limit %d", v.Used, src.Used, rr.BytesWritten, v.SizeLimit)
	}

	// A restore never overwrites.
	if _, err := Restore(ctx, f, st, m, "copy", 0, Options{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("restore into an existing volume: %v", err)
	}
	if _, err := Restore(ctx, f, st, m, "small", 1000, Options{}); err == nil {
		t.Fatal("restore into a volume smaller than the data worked")
	}
}

func TestBackupIncrementalPushUploadsOnlyChanges(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	b := newVolume(t, f, "data")
	b.mkdir("/d")
	b.file("/d/big", pattern("big", 4<<20))
	b.file("/d/other", pattern("other", 1<<20))
	st := newMemStore()
	first, err := PushVolume(ctx, f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.BytesUploaded != 5<<20 || first.ChunksReused != 0 {
		t.Fatalf("first push uploaded %d bytes, reused %d chunks; want 5 MiB, 0", first.BytesUploaded, first.ChunksReused)
	}
	// Unchanged: nothing to upload.
	same, err := PushVolume(ctx, f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if same.BytesUploaded != 0 || same.ChunksReused != 80 {
		t.Fatalf("push of an unchanged volume uploaded %d bytes, reused %d chunks", same.BytesUploaded, same.ChunksReused)
	}
	// 100 bytes changed inside one chunk, and a new 100 KiB file: one
	// chunk, plus two for the new file (64 KiB + 36 KiB).
	b.write("/d/big", 1<<20+5, bytes.Repeat([]byte{0xAB}, 100))
	b.file("/d/new", pattern("new", 100<<10))
	next, err := PushVolume(ctx, f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(fsstate.ChunkSize + 100<<10); next.BytesUploaded != want || next.ChunksUploaded != 3 {
		t.Fatalf("incremental push uploaded %d bytes in %d chunks; want %d in 3", next.BytesUploaded, next.ChunksUploaded, want)
	}
	if next.BytesScanned != 5<<20+100<<10 {
		t.Errorf("scanned %d", next.BytesScanned)
	}
	for _, k := range st.keys(chunkPrefix) {
		if st.puts[k] != 1 {
			t.Errorf("%s written %d times", k, st.puts[k])
		}
	}
	// Each backup restores its own state.
	want := tree(t, f, "data")
	m, err := Find(ctx, st, next.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, f, st, m, "latest", 0, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, tree(t, f, "latest"))
	m1, _ := Find(ctx, st, first.ID, "")
	if _, err := Restore(ctx, f, st, m1, "first", 0, Options{}); err != nil {
		t.Fatal(err)
	}
	got := tree(t, f, "first")
	if _, ok := got["/d/new"]; ok || got["/d/big"].Sum == want["/d/big"].Sum {
		t.Errorf("the first backup restored the later state")
	}
}

func TestBackupInterruptedPushLeavesNoBackup(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	b := newVolume(t, f, "data")
	b.file("/f", pattern("f", 2<<20))
	st := newMemStore()
	st.failAfter = 10
	if _, err := PushVolume(ctx, f, "data", st, Options{Workers: 1}); err == nil {
		t.Fatal("push with a failing store worked")
	}
	if k := st.keys(manifestPrefix); len(k) != 0 {
		t.Fatalf("an interrupted push left manifests %v", k)
	}
	if k := st.keys(lockPrefix); len(k) != 0 {
		t.Fatalf("an interrupted push left its lock %v", k)
	}
	if snaps, _ := f.Snapshots(ctx, "data"); len(snaps) != 0 {
		t.Errorf("the temporary snapshot is left: %+v", snaps)
	}
	stored := len(st.keys(chunkPrefix))
	st.failAfter = 0
	res, err := PushVolume(ctx, f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ChunksReused != int64(stored) || res.ChunksUploaded != 32-int64(stored) {
		t.Errorf("after %d chunks stored by the failed push: reused %d, uploaded %d", stored, res.ChunksReused, res.ChunksUploaded)
	}
}
