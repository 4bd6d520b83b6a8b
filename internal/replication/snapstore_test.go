package replication

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

func TestSnapshotStreamRoundTrip(t *testing.T) {
	src, err := newSnapStore(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := src.pendingDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"000001.sst": bytes.Repeat([]byte("a"), 100000), "MANIFEST-000001": []byte("m"), "empty": nil}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := src.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&dirSnapshot{dir: dir, kind: kindData}).Persist(sink); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	metas, _ := src.List()
	if len(metas) != 1 || metas[0].Index != 10 {
		t.Fatalf("list: %+v", metas)
	}
	meta, rc, err := src.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(stream)) != meta.Size {
		t.Fatalf("stream %d bytes, meta says %d, err %v", len(stream), meta.Size, err)
	}

	// A follower receives it through Write.
	dst, _ := newSnapStore(t.TempDir(), 2)
	sink2, _ := dst.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, nil)
	if _, err := io.Copy(sink2, bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if err := sink2.Close(); err != nil {
		t.Fatal(err)
	}
	m2, _ := dst.List()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dst.stateDirOf(m2[0].ID), name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}

	// A corrupted stream is refused and leaves no snapshot behind.
	bad := append([]byte(nil), stream...)
	bad[len(bad)/2] ^= 0xff
	dst2, _ := newSnapStore(t.TempDir(), 2)
	sink3, _ := dst2.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, nil)
	_, _ = io.Copy(sink3, bytes.NewReader(bad))
	if err := sink3.Close(); err == nil {
		t.Fatal("corrupted snapshot stream accepted")
	}
	if m, _ := dst2.List(); len(m) != 0 {
		t.Fatalf("a failed install left %d snapshots", len(m))
	}
}

func TestDataNodeRefusesWitnessSnapshot(t *testing.T) {
	s, _ := newSnapStore(t.TempDir(), 2)
	var buf bytes.Buffer
	if err := writeStream(&buf, kindWitness, "x", t.TempDir(), nil); err != nil {
		t.Fatal(err)
	}
	f := &dataFSM{snaps: s}
	if err := f.Restore(io.NopCloser(&buf)); err != errWitnessSnapshot {
		t.Fatalf("restore of a witness snapshot: %v", err)
	}
}

func TestSnapshotStreamSubdirsAndHardLinks(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "volsnaps", "1", "daily"), 0o700))
	big := bytes.Repeat([]byte("sst"), 50000)
	must(os.WriteFile(filepath.Join(src, "000007.sst"), big, 0o600))
	must(os.Link(filepath.Join(src, "000007.sst"), filepath.Join(src, "volsnaps", "1", "daily", "000007.sst")))
	must(os.WriteFile(filepath.Join(src, "volsnaps", "1", "daily", "MANIFEST"), []byte("m"), 0o600))

	plan, size, err := streamPlan(src, "id")
	must(err)
	var buf bytes.Buffer
	must(writeStream(&buf, kindData, "id", src, plan))
	if int64(buf.Len()) != size {
		t.Fatalf("stream is %d bytes, plan said %d", buf.Len(), size)
	}
	if size > int64(len(big))+1000 {
		t.Fatalf("a hard-linked file was sent twice: stream of %d bytes for %d bytes of data", size, len(big))
	}
	dst := t.TempDir()
	if _, _, err := readStreamHeader(&buf); err != nil {
		t.Fatal(err)
	}
	must(readStreamFiles(&buf, dst))
	for _, p := range []string{"000007.sst", "volsnaps/1/daily/000007.sst"} {
		got, err := os.ReadFile(filepath.Join(dst, p))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
}

func TestSnapshotStreamRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"../x", "/etc/passwd", "a/../../x", "", "."} {
		var b bytes.Buffer
		b.WriteByte(recFile)
		b.Write([]byte{0, byte(len(name))})
		b.WriteString(name)
		b.Write(make([]byte, 8+4))
		if err := readStreamFiles(&b, t.TempDir()); err == nil {
			t.Fatalf("name %q accepted", name)
		}
	}
}
