package backup

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
)

// pushed makes a volume with a few files and pushes it once.
func pushed(t *testing.T) (*fsapi.FS, *memStore, *PushResult) {
	t.Helper()
	f := newFS(t)
	b := newVolume(t, f, "data")
	b.mkdir("/d")
	b.file("/d/a", pattern("a", 300<<10))
	b.file("/d/b", pattern("b", 10))
	st := newMemStore()
	res, err := PushVolume(context.Background(), f, "data", st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), st, "", Options{}); err != nil {
		t.Fatalf("verify of a good backup: %v", err)
	}
	return f, st, res
}

func TestBackupVerifyNamesMissingChunk(t *testing.T) {
	ctx := context.Background()
	f, st, res := pushed(t)
	victim := st.keys(chunkPrefix)[2]
	delete(st.objs, victim)
	vr, err := Verify(ctx, st, res.ID, Options{})
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), victim) || len(vr.Problems) != 1 {
		t.Fatalf("verify with %s missing: %v (%+v)", victim, err, vr)
	}
	// Restore refuses before making anything.
	m, _ := Find(ctx, st, res.ID, "")
	_, err = Restore(ctx, f, st, m, "copy", 0, Options{})
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("restore with %s missing: %v", victim, err)
	}
	if _, err := f.Volume(ctx, "copy"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a refused restore made the volume: %v", err)
	}
}

func TestBackupVerifyNamesAlteredChunk(t *testing.T) {
	ctx := context.Background()
	f, st, res := pushed(t)
	victim := st.keys(chunkPrefix)[1]
	st.objs[victim][100] ^= 1
	vr, err := Verify(ctx, st, "", Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) || len(vr.Problems) != 1 {
		t.Fatalf("verify with %s altered: %v (%+v)", victim, err, vr)
	}
	// Restore checks each chunk before writing it, and takes back the
	// partial volume.
	m, _ := Find(ctx, st, res.ID, "")
	_, err = Restore(ctx, f, st, m, "copy", 0, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("restore with %s altered: %v", victim, err)
	}
	if _, err := f.Volume(ctx, "copy"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("an aborted restore left the volume: %v", err)
	}
	// A chunk cut short is caught too.
	st.objs[victim] = st.objs[victim][:1000]
	if _, err := Verify(ctx, st, "", Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("verify with %s truncated: %v", victim, err)
	}
}

func TestBackupVerifyNamesDamagedManifest(t *testing.T) {
	ctx := context.Background()
	_, st, res := pushed(t)
	good := append([]byte{}, st.objs[res.Key]...)
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"altered":   func(b []byte) []byte { return []byte(strings.Replace(string(b), `"uid":1000`, `"uid":1001`, 1)) },
		"empty":     func(b []byte) []byte { return nil },
	} {
		st.objs[res.Key] = damage(append([]byte{}, good...))
		_, err := Verify(ctx, st, res.ID, Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), res.Key) {
			t.Errorf("%s manifest: verify said %v", name, err)
		}
		if _, err := Find(ctx, st, "", ""); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s manifest: find latest said %v", name, err)
		}
	}
}

func TestBackupManifestChecks(t *testing.T) {
	m := &Manifest{Format: FormatVersion, ID: "20261125T154000Z-abcdef", Volume: "v", ChunkSize: fsstate.ChunkSize,
		Inodes: []Inode{{Type: TypeDir, Paths: []Name{"/"}}, {Type: TypeFile, Paths: []Name{"/f\xff"}, Size: 10,
			Chunks: []Chunk{{Off: 0, Len: 10, Hash: strings.Repeat("ab", 32)}}}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil || got.Inodes[1].Paths[0] != "/f\xff" {
		t.Fatalf("round trip of a non-UTF-8 name: %v, %q", err, got.Inodes[1].Paths)
	}
	for name, edit := range map[string]func(m *Manifest){
		"chunk past the end":  func(m *Manifest) { m.Inodes[1].Chunks[0].Len = 11 },
		"short chunk inside":  func(m *Manifest) { m.Inodes[1].Size = 1 << 20 },
		"unaligned chunk":     func(m *Manifest) { m.Inodes[1].Chunks[0].Off = 1; m.Inodes[1].Size = 11 },
		"bad hash":            func(m *Manifest) { m.Inodes[1].Chunks[0].Hash = "xyz" },
		"no parent":           func(m *Manifest) { m.Inodes[1].Paths[0] = "/nodir/f" },
		"relative path":       func(m *Manifest) { m.Inodes[1].Paths[0] = "f" },
		"dot-dot":             func(m *Manifest) { m.Inodes[1].Paths[0] = "/.." },
		"root not first":      func(m *Manifest) { m.Inodes[0], m.Inodes[1] = m.Inodes[1], m.Inodes[0] },
		"duplicate path":      func(m *Manifest) { m.Inodes[1].Paths = append(m.Inodes[1].Paths, "/f\xff") },
		"other chunk size":    func(m *Manifest) { m.ChunkSize = 1 << 20 },
		"symlink sans target": func(m *Manifest) { m.Inodes[1].Type, m.Inodes[1].Chunks, m.Inodes[1].Size = TypeSymlink, nil, 0 },
		"symlink with data":   func(m *Manifest) { m.Inodes[1].Type, m.Inodes[1].Target = TypeSymlink, "x" },
	} {
		c := *m
		c.Inodes = []Inode{m.Inodes[0], m.Inodes[1]}
		c.Inodes[1].Paths = append([]Name{}, m.Inodes[1].Paths...)
		c.Inodes[1].Chunks = append([]Chunk{}, m.Inodes[1].Chunks...)
		edit(&c)
		b, _ := c.Encode()
		if _, err := DecodeManifest(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decoded (%v)", name, err)
		}
	}
}

// pushAt pushes volume data of f's live state as if at time at.
func pushAt(t *testing.T, f *fsapi.FS, st Store, at time.Time) *PushResult {
	t.Helper()
	local, _ := f.Local()
	v, err := local.VolumeByName("data")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), st, Source{Tree: local, Volume: v, Snapshot: Snapshot{Name: "live", Time: at}},
		Options{ID: NewID(at)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBackupPrune(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	b := newVolume(t, f, "data")
	st := newMemStore()
	day := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	// Six backups over three days, each adding a file: b0 b1 | b2 b3 | b4 b5.
	var ids []string
	for i := range 6 {
		b.file("/f"+string(rune('0'+i)), pattern("f"+string(rune('0'+i)), 100<<10))
		at := day.Add(time.Duration(i/2)*24*time.Hour + time.Duration(i%2)*time.Hour)
		ids = append(ids, pushAt(t, f, st, at).ID)
	}
	if _, err := Prune(ctx, st, PruneOptions{}); err == nil {
		t.Fatal("prune without a keep rule ran")
	}
	// A push in progress keeps prune away.
	lock, _ := json.Marshal(lockBody{ID: "x", Volume: "data", Started: time.Now()})
	st.objs[lockKey("x")] = lock
	if _, err := Prune(ctx, st, PruneOptions{KeepLast: 1}); err == nil || !strings.Contains(err.Error(), "has not ended") {
		t.Fatalf("prune during a push: %v", err)
	}
	delete(st.objs, lockKey("x"))

	dry, err := Prune(ctx, st, PruneOptions{KeepLast: 1, KeepDaily: 2, DryRun: true})
	if err != nil || len(dry.Deleted) != 4 || len(st.keys(manifestPrefix)) != 6 {
		t.Fatalf("dry run: %+v, %v; %d manifests", dry, err, len(st.keys(manifestPrefix)))
	}
	// Newest (b5), and the newest of each of the last two days (b5, b3).
	res, err := Prune(ctx, st, PruneOptions{KeepLast: 1, KeepDaily: 2})
	if err != nil {
		t.Fatal(err)
	}
	wantKept := []string{"data/" + ids[5], "data/" + ids[3]}
	if strings.Join(res.Kept, ",") != strings.Join(wantKept, ",") {
		t.Fatalf("kept %v, want %v", res.Kept, wantKept)
	}
	// b5 holds every file; nothing is unreferenced yet.
	if res.ChunksDeleted != 0 || len(st.keys(manifestPrefix)) != 2 {
		t.Fatalf("prune deleted %d chunks, %d manifests left", res.ChunksDeleted, len(st.keys(manifestPrefix)))
	}
	// Delete files, push, keep only the last: their chunks go.
	st2, _ := f.Local()
	v, _ := st2.VolumeByName("data")
	for _, n := range []string{"f0", "f1"} {
		if _, err := f.Remove(ctx, nil, v.ID, fsstate.RootIno, n); err != nil {
			t.Fatal(err)
		}
	}
	pushAt(t, f, st, day.Add(4*24*time.Hour))
	res, err = Prune(ctx, st, PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ChunksDeleted != 4 || res.BytesFreed != 200<<10 || len(res.Deleted) != 2 {
		t.Fatalf("prune after deleting two files: %+v", res)
	}
	if _, err := Verify(ctx, st, "", Options{}); err != nil {
		t.Fatalf("verify after prune: %v", err)
	}
	sums, err := List(ctx, st)
	if err != nil || len(sums) != 1 || sums[0].Files != 4 || sums[0].UniqueBytes != 400<<10 {
		t.Fatalf("list after prune: %+v, %v", sums, err)
	}
	// A damaged manifest stops prune before it deletes anything.
	key := st.keys(manifestPrefix)[0]
	st.objs[key] = st.objs[key][:10]
	if _, err := Prune(ctx, st, PruneOptions{KeepLast: 1}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) {
		t.Fatalf("prune with a damaged manifest: %v", err)
	}
}

func TestBackupListUniqueBytes(t *testing.T) {
	ctx := context.Background()
	f := newFS(t)
	b := newVolume(t, f, "data")
	st := newMemStore()
	b.file("/shared", pattern("s", 128<<10))
	first := pushAt(t, f, st, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b.file("/new", pattern("n", 64<<10))
	second := pushAt(t, f, st, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	sums, err := List(ctx, st)
	if err != nil || len(sums) != 2 {
		t.Fatal(sums, err)
	}
	if sums[0].ID != first.ID || sums[0].UniqueBytes != 0 || sums[1].ID != second.ID || sums[1].UniqueBytes != 64<<10 {
		t.Fatalf("list: %+v", sums)
	}
	if sums[1].Files != 2 || sums[1].Bytes != 192<<10 {
		t.Fatalf("list: %+v", sums[1])
	}
}

func TestBackupOpenAndRefs(t *testing.T) {
	if st, err := Open("s3://bucket/x?region=eu-west-1"); err != nil || storeName(st) != "s3://bucket/x" {
		t.Errorf("s3: %v, %v", st, err)
	}
	if _, err := Open("s3://b/x"); err == nil || !strings.Contains(err.Error(), "bucket name") {
		t.Errorf("s3 with a bad bucket: %v", err)
	}
	if _, err := Open("ftp://h/x"); !errors.Is(err, ErrUnknownScheme) || !strings.Contains(err.Error(), "supported: file:///path and s3://bucket/prefix") {
		t.Errorf("ftp: %v", err)
	}
	if _, err := Open("file://host/x"); err == nil {
		t.Errorf("file URL with a host opened")
	}
	for in, want := range map[string][2]string{
		"file:///b":                         {"file:///b", ""},
		"file:///b@20261125T154000Z-abcdef": {"file:///b", "20261125T154000Z-abcdef"},
		"file:///x@y/b":                     {"file:///x@y/b", ""},
	} {
		if u, id := ParseRef(in); u != want[0] || id != want[1] {
			t.Errorf("ParseRef(%q) = %q, %q", in, u, id)
		}
	}
}
