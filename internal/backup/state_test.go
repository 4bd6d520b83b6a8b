package backup

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"keel/internal/fsapi"
	"keel/internal/fsapi/fsapitest"
	"keel/internal/fsstate"
)

// A node's state pushed as a state image and fetched back is the same
// state (the same hash once opened), and the fetched files are the
// checkpoint's byte for byte, hard links included.
func TestStateImageRoundTrip(t *testing.T) {
	ctx := context.Background()
	st, err := fsstate.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := fsapi.New(fsapitest.New(st))
	makeTree(t, f)
	if _, err := f.CreateSnapshot(ctx, "data", "before"); err != nil {
		t.Fatal(err)
	}
	newVolume(t, f, "other").file("/x", pattern("x", 300<<10))
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := st.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	want, err := st.Hash()
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	img := StateImage{ClusterID: "c1", RaftIndex: 42, RaftTerm: 3, Meta: json.RawMessage(`{"index":42}`)}
	res, err := PushState(ctx, store, ckpt, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Volume != StateVolume || res.BytesUploaded == 0 {
		t.Fatalf("push: %+v", res)
	}
	// A second image of the unchanged checkpoint uploads nothing.
	res2, err := PushState(ctx, store, ckpt, img, Options{ID: NewID(res.Snapshot.Time.Add(1e9))})
	if err != nil {
		t.Fatal(err)
	}
	if res2.BytesUploaded != 0 {
		t.Errorf("second image of the same files uploaded %d bytes", res2.BytesUploaded)
	}

	m, err := FindState(ctx, store, "", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if m.State.RaftIndex != 42 || m.State.RaftTerm != 3 || string(m.State.Meta) != `{"index":42}` {
		t.Fatalf("image metadata: %+v", m.State)
	}
	if _, err := FindState(ctx, store, "", "other-cluster"); err == nil || !strings.Contains(err.Error(), "belongs to cluster c1") {
		t.Fatalf("image of another cluster: %v", err)
	}
	out := filepath.Join(t.TempDir(), "seed")
	if err := FetchState(ctx, store, m, out, Options{}); err != nil {
		t.Fatal(err)
	}
	compareDirs(t, ckpt, out)

	st2, err := fsstate.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if err := st2.RestoreFrom(out); err != nil {
		t.Fatal(err)
	}
	if got, _ := st2.Hash(); got != want {
		t.Fatal("the state opened from the fetched image differs from the source")
	}

	// Volume operations leave state images alone.
	if lm, err := Find(ctx, store, "", ""); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("find of a volume backup in a store of state images: %v %v", lm, err)
	}
	if _, err := Restore(ctx, f, store, m, "fromstate", 0, Options{}); err == nil || !strings.Contains(err.Error(), "state image") {
		t.Fatalf("restore of a state image as a volume: %v", err)
	}
}

// A missing or altered chunk of a state image stops the fetch, names the
// object, and leaves no directory behind.
func TestStateImageDamageDetected(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "000001.sst"), pattern("sst", 200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	if _, err := PushState(ctx, store, src, StateImage{ClusterID: "c", RaftIndex: 1, Meta: json.RawMessage(`{}`)}, Options{}); err != nil {
		t.Fatal(err)
	}
	m, err := FindState(ctx, store, "", "c")
	if err != nil {
		t.Fatal(err)
	}
	key := ChunkKey(m.Inodes[1].Chunks[1].Hash)
	store.objs[key][10] ^= 1
	out := filepath.Join(t.TempDir(), "seed")
	if err := FetchState(ctx, store, m, out, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) {
		t.Fatalf("altered chunk: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed fetch left %s: %v", out, err)
	}
	delete(store.objs, key)
	if err := FetchState(ctx, store, m, out, Options{}); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), key) {
		t.Fatalf("missing chunk: %v", err)
	}
}

// compareDirs checks that two trees hold the same files with the same
// bytes, and the same hard links.
func compareDirs(t *testing.T, a, b string) {
	t.Helper()
	list := func(root string) map[string]string {
		out := map[string]string{}
		group := map[uint64][]string{} // inode → paths under root
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				out[rel] = "dir"
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := d.Info()
			ino := fi.Sys().(*syscall.Stat_t).Ino
			group[ino] = append(group[ino], rel)
			out[rel] = string(data)
			return nil
		})
		for _, paths := range group {
			for _, p := range paths {
				out[p] += "|links=" + strings.Join(paths, ",")
			}
		}
		return out
	}
	wa, wb := list(a), list(b)
	if len(wa) != len(wb) {
		t.Fatalf("%d entries in the source, %d fetched", len(wa), len(wb))
	}
	for k, v := range wa {
		if wb[k] != v {
			t.Errorf("%s differs after the round trip", k)
		}
	}
}
