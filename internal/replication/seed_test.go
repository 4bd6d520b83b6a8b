package replication

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"keel/internal/fsstate"
)

// copyTree copies the files under src into dst (which it makes), keeping
// hard links between them: what a state image's round trip through a
// backup store gives back.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A data node whose disk was lost comes back seeded from a state image
// (taken on the leader, copied away as a backup would be): it restores the
// image, then takes from the leader only the entries after it, not the
// whole state, and ends identical to the others.
func TestNodeSeededFromStateImageCatchesUpFromLog(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for i := 0; i < 20; i++ { // about 4 MiB of state before the image
		ino := createFile(t, c, vol, fmt.Sprintf("before%d", i))
		if r := c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: big}); r.Err != 0 {
			t.Fatal(r.Err)
		}
	}
	c.converge()
	l := c.leader()
	pin, err := l.PinSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "image")
	copyTree(t, pin.Dir, image)
	meta := pin.Meta
	pin.Release()
	if _, err := os.Stat(pin.Dir); !os.IsNotExist(err) {
		t.Fatalf("released pin still there: %v", err)
	}

	var lost string
	for id, n := range c.nodes {
		if !n.IsLeader() {
			lost = id
		}
	}
	c.stop(lost)
	if err := os.RemoveAll(c.dirs[lost]); err != nil {
		t.Fatal(err)
	}
	createFile(t, c, vol, "after-image")

	if err := SeedSnapshot(c.dirs[lost], meta, nil, func(dir string) error {
		copyTree(t, image, dir)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := SeedSnapshot(c.dirs[lost], meta, nil, func(string) error { return nil }); err == nil {
		t.Fatal("a second seed of the same data directory was accepted")
	}
	n := c.start(lost)
	c.converge()
	if _, err := n.Store().Lookup(vol, fsstate.RootIno, "after-image"); err != nil {
		t.Fatal(err)
	}
	var m dto.Metric
	if err := n.metrics.RaftRecvBytes.Write(&m); err != nil {
		t.Fatal(err)
	}
	got := m.GetCounter().GetValue()
	if got > float64(len(big)) {
		t.Fatalf("the seeded node received %.0f bytes from the leader; the entries after the image are a few hundred", got)
	}
	t.Logf("seeded node received %.0f bytes from the leader (state before the image: %d bytes of file data)", got, 20*len(big))
}

// RetainLogFrom keeps the entries from a state image's index through log
// compactions that would otherwise drop them.
func TestRetainLogFromKeepsEntriesThroughCompaction(t *testing.T) {
	c := newTestCluster(t, RoleData)
	c.tweaks = func(cfg *Config) { cfg.TrailingLogs = 5; cfg.SnapshotThreshold = 1 << 40; cfg.walSegmentSize = 4096 }
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	n := c.leader()
	keepFrom := n.raft.LastIndex()
	for i := range 60 {
		createFile(t, c, vol, fmt.Sprintf("f%d", i))
	}
	trailing, err := n.RetainLogFrom(keepFrom)
	if err != nil {
		t.Fatal(err)
	}
	if want := n.raft.LastIndex() - keepFrom + 5; trailing != want {
		t.Fatalf("trailing %d, want %d", trailing, want)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := n.wal.FirstIndex(); first > keepFrom {
		t.Fatalf("the log was compacted past the retained index: first %d > %d", first, keepFrom)
	}
	// Without the retention, the same compaction drops them.
	if _, err := n.RetainLogFrom(0); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		createFile(t, c, vol, fmt.Sprintf("g%d", i))
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := n.wal.FirstIndex(); first <= keepFrom {
		t.Fatalf("without retention the log still starts at %d (≤ %d)", first, keepFrom)
	}
}
