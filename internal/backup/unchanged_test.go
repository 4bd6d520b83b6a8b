package backup

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"keel/internal/fsstate"
)

// With the previous backup given, a push reads only the files that
// changed since (by inode, size, mtime and ctime), and with SkipUnchanged
// makes no backup at all when nothing changed; what it makes restores the
// same tree as a push that reads everything.
func TestBackupPushReusesUnchangedFiles(t *testing.T) {
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
	prev, err := Find(ctx, st, first.ID, "data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PushVolume(ctx, f, "data", st, Options{Previous: prev, SkipUnchanged: true}); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("push of an unchanged volume with SkipUnchanged: %v", err)
	}
	if snaps, _ := f.Snapshots(ctx, "data"); len(snaps) != 0 {
		t.Errorf("a skipped push left its snapshot: %+v", snaps)
	}
	// A chmod is a change too (ctime), though no data moved.
	b.setAttr("/d/other", fsstate.SetAttr{Mode: ptr(uint32(0o600))})
	if _, err := PushVolume(ctx, f, "data", st, Options{Previous: prev, SkipUnchanged: true}); err != nil {
		t.Fatalf("push after a chmod: %v", err)
	}
	prev, _ = Find(ctx, st, "", "data")

	b.write("/d/big", 2<<20, bytes.Repeat([]byte{0xCD}, 10))
	res, err := PushVolume(ctx, f, "data", st, Options{Previous: prev, SkipUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesScanned != 4<<20 || res.BytesUnchanged != 1<<20 || res.BytesUploaded != fsstate.ChunkSize {
		t.Fatalf("scanned %d, unchanged %d, uploaded %d; want the changed 4 MiB file read, 1 MiB skipped, one chunk up",
			res.BytesScanned, res.BytesUnchanged, res.BytesUploaded)
	}
	want := tree(t, f, "data")
	m, _ := Find(ctx, st, res.ID, "")
	if _, err := Restore(ctx, f, st, m, "copy", 0, Options{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, tree(t, f, "copy"))

	// A previous backup of another volume (here: the copy, same inode
	// numbers) is never trusted.
	other, _ := Find(ctx, st, res.ID, "")
	other.VolumeID++
	res2, err := PushVolume(ctx, f, "data", st, Options{Previous: other})
	if err != nil {
		t.Fatal(err)
	}
	if res2.BytesUnchanged != 0 || res2.BytesScanned != 5<<20 {
		t.Fatalf("with another volume's backup as previous: scanned %d, unchanged %d", res2.BytesScanned, res2.BytesUnchanged)
	}
}

// Prune limited to one volume deletes only that volume's old backups and
// keeps every chunk the other volumes' backups use.
func TestBackupPruneOneVolume(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	a := newVolume(t, f, "a")
	b := newVolume(t, f, "b")
	st := newMemStore()
	shared := pattern("shared", 200<<10)
	a.file("/x", shared)
	b.file("/x", shared)
	day := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	pushVolAt := func(vol string, at time.Time) {
		t.Helper()
		if _, err := PushVolume(ctx, f, vol, st, Options{ID: NewID(at)}); err != nil {
			t.Fatal(err)
		}
	}
	pushVolAt("a", day)
	pushVolAt("b", day.Add(time.Minute))
	if _, err := f.Remove(ctx, nil, a.vol, fsstate.RootIno, "x"); err != nil {
		t.Fatal(err)
	}
	a.file("/y", pattern("y", 100<<10))
	pushVolAt("a", day.Add(time.Hour))
	res, err := Prune(ctx, st, PruneOptions{KeepLast: 1, Volume: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 1 || !strings.HasPrefix(res.Deleted[0], "a/") || res.ChunksDeleted != 0 {
		t.Fatalf("prune of volume a: %+v (b's backup still uses a's old chunks)", res)
	}
	if _, err := Verify(ctx, st, "", Options{}); err != nil {
		t.Fatalf("verify after prune: %v", err)
	}
	if sums, _ := List(ctx, st); len(sums) != 2 {
		t.Fatalf("after prune: %+v", sums)
	}
}
