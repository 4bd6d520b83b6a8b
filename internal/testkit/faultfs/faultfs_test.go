package faultfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// mount mounts a faultfs over a fresh backing directory, or skips the test
// saying why it cannot.
func mount(t *testing.T) (*FS, string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Crash() })
	return f, backing
}

// remount crashes f and mounts its backing directory again.
func remount(t *testing.T, f *FS) *FS {
	t.Helper()
	if err := f.Crash(); err != nil {
		t.Fatalf("crash: %v", err)
	}
	g, err := Mount(f.Backing, f.Mountpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Crash() })
	return g
}

func write(t *testing.T, p string, data []byte, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnsyncedWriteLostSyncedKept(t *testing.T) {
	f, backing := mount(t)
	lost, kept := filepath.Join(f.Mountpoint, "lost"), filepath.Join(f.Mountpoint, "kept")
	write(t, lost, bytes.Repeat([]byte("L"), 10000), false)
	write(t, kept, bytes.Repeat([]byte("K"), 10000), true)
	// Before the crash the process sees its own writes; the backing file does not.
	if got := read(t, lost); len(got) != 10000 || got[9999] != 'L' {
		t.Fatalf("unsynced file before crash: %d bytes", len(got))
	}
	if st, err := os.Stat(lost); err != nil || st.Size() != 10000 {
		t.Fatalf("stat of unsynced file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(backing, "lost")); len(b) != 0 {
		t.Fatalf("backing file has %d unsynced bytes before crash", len(b))
	}
	if d := f.DirtyBytes(); d < 10000 {
		t.Fatalf("dirty bytes %d, want >= 10000", d)
	}
	g := remount(t, f)
	if got := read(t, filepath.Join(g.Mountpoint, "lost")); len(got) != 0 {
		t.Fatalf("unsynced write survived the crash: %d bytes", len(got))
	}
	if got := read(t, filepath.Join(g.Mountpoint, "kept")); !bytes.Equal(got, bytes.Repeat([]byte("K"), 10000)) {
		t.Fatalf("synced write lost: %d bytes", len(got))
	}
}

func TestOverwriteAfterSyncRevertsToSynced(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "f")
	write(t, p, bytes.Repeat([]byte("a"), 9000), true)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("BBBB"), 4094); err != nil { // across a page boundary
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("tail"), 9000); err != nil { // extends
		t.Fatal(err)
	}
	fh.Close()
	want := append(bytes.Repeat([]byte("a"), 9000), "tail"...)
	copy(want[4094:], "BBBB")
	if got := read(t, p); !bytes.Equal(got, want) {
		t.Fatalf("dirty read: got %q...", got[4090:4100])
	}
	g := remount(t, f)
	if got := read(t, filepath.Join(g.Mountpoint, "f")); !bytes.Equal(got, bytes.Repeat([]byte("a"), 9000)) {
		t.Fatalf("after crash got %d bytes, want the synced 9000 a's", len(got))
	}
}

func TestTruncateAndExtendWithDirtyData(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "f")
	write(t, p, bytes.Repeat([]byte("x"), 10000), true)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(6000); err != nil { // the old x's must not come back
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("yy"), 5000); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 6000)
	copy(want, bytes.Repeat([]byte("x"), 100))
	copy(want[5000:], "yy")
	if got := read(t, p); !bytes.Equal(got, want) {
		t.Fatalf("after truncate/extend: len %d, [100]=%q [5000:5002]=%q", len(got), got[100], got[5000:5002])
	}
	if st, _ := fh.Stat(); st.Size() != 6000 {
		t.Fatalf("size %d, want 6000", st.Size())
	}
	// Before sync, a crash gives back the 10000 x's.
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Backing, "f")); !bytes.Equal(b, want) {
		t.Fatalf("backing after fsync differs: len %d", len(b))
	}
	fh.Close()
	g := remount(t, f)
	if got := read(t, filepath.Join(g.Mountpoint, "f")); !bytes.Equal(got, want) {
		t.Fatalf("after crash: len %d", len(got))
	}
}

func TestUnsyncedTruncateLost(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "f")
	write(t, p, []byte("durable"), true)
	if err := os.Truncate(p, 0); err != nil { // by path
		t.Fatal(err)
	}
	if got := read(t, p); len(got) != 0 {
		t.Fatalf("truncated file reads %q", got)
	}
	g := remount(t, f)
	if got := read(t, filepath.Join(g.Mountpoint, "f")); string(got) != "durable" {
		t.Fatalf("after crash %q, want the synced content", got)
	}
}

func TestFullRefusesWholeWrites(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "f")
	write(t, p, []byte("before"), true)
	f.SetFull(true)
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write([]byte("more")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write when full: %v, want ENOSPC", err)
	}
	fh.Close()
	if _, err := os.Create(filepath.Join(f.Mountpoint, "new")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create when full: %v, want ENOSPC", err)
	}
	if got := read(t, p); string(got) != "before" {
		t.Fatalf("after refused write %q", got)
	}
	f.SetFull(false)
	// Dirty data, then full: fsync fails and writes nothing back.
	fh, err = os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt([]byte("AFTER!"), 0); err != nil {
		t.Fatal(err)
	}
	f.SetFull(true)
	if err := fh.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fsync of dirty data when full: %v, want ENOSPC", err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Backing, "f")); string(b) != "before" {
		t.Fatalf("backing after failed fsync %q", b)
	}
	f.SetFull(false)
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync after space came back: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Backing, "f")); string(b) != "AFTER!" {
		t.Fatalf("backing after fsync %q", b)
	}
}

func TestQuota(t *testing.T) {
	f, _ := mount(t)
	fh, err := os.Create(filepath.Join(f.Mountpoint, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f.SetQuota(5000)
	if _, err := fh.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(make([]byte, 4096)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past quota: %v, want ENOSPC", err)
	}
	if st, _ := fh.Stat(); st.Size() != 4096 {
		t.Fatalf("size after refused write %d, want 4096 (nothing partial)", st.Size())
	}
	if err := fh.Sync(); err != nil { // admitted bytes can be written back
		t.Fatal(err)
	}
}

func TestFsyncDelay(t *testing.T) {
	f, _ := mount(t)
	f.SetFsyncDelay(300 * time.Millisecond)
	fh, err := os.Create(filepath.Join(f.Mountpoint, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("fsync took %v, want >= 300ms", d)
	}
	f.SetFsyncDelay(0)
	start = time.Now()
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	t.Logf("fsync with delay 0: %v", time.Since(start))
}

func TestRenameAndUnlinkDropOverlay(t *testing.T) {
	f, _ := mount(t)
	a, b := filepath.Join(f.Mountpoint, "a"), filepath.Join(f.Mountpoint, "b")
	write(t, a, []byte("aaaa"), false)
	write(t, b, []byte("bbbb"), false)
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b); string(got) != "aaaa" {
		t.Fatalf("renamed file reads %q", got)
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if d := f.DirtyBytes(); d != 0 {
		t.Fatalf("dirty bytes %d after both files are gone", d)
	}
}

func TestMmapReadSeesDirtyData(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "m")
	write(t, p, bytes.Repeat([]byte("q"), 8192), false)
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	m, err := syscall.Mmap(int(fh.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if !bytes.Equal(m, bytes.Repeat([]byte("q"), 8192)) {
		t.Fatal("mmap read does not see unsynced data")
	}
}

func statfsFree(t *testing.T, dir string) uint64 {
	t.Helper()
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return s.Bavail * uint64(s.Bsize)
}

func TestStatfsShowsFullAndQuota(t *testing.T) {
	f, _ := mount(t)
	if free := statfsFree(t, f.Mountpoint); free < 1<<20 {
		t.Fatalf("free %d before any fault; want the backing directory's", free)
	}
	f.SetQuota(1 << 20)
	if free := statfsFree(t, f.Mountpoint); free > 1<<20 || free < 1<<19 {
		t.Fatalf("free %d with a 1 MiB quota; want about 1 MiB", free)
	}
	f.SetFull(true)
	if free := statfsFree(t, f.Mountpoint); free != 0 {
		t.Fatalf("free %d when full; want 0", free)
	}
	f.SetFull(false)
	if free := statfsFree(t, f.Mountpoint); free < 1<<20 {
		t.Fatalf("free %d after space came back", free)
	}
}

func TestOverwriteWhenFull(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "f")
	write(t, p, bytes.Repeat([]byte("a"), 8192), true)
	f.SetFull(true)
	f.SetOverwriteWhenFull(true)
	fh, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt([]byte("inside"), 100); err != nil {
		t.Fatalf("overwrite inside the file when full (ext4-like): %v", err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync of an overwrite when full (ext4-like): %v", err)
	}
	if _, err := fh.WriteAt([]byte("past the end"), 8190); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the end when full: %v, want ENOSPC", err)
	}
	if _, err := os.Create(filepath.Join(f.Mountpoint, "new")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create when full: %v, want ENOSPC", err)
	}
	f.SetOverwriteWhenFull(false)
	if _, err := fh.WriteAt([]byte("inside"), 200); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("overwrite when full (copy-on-write-like): %v, want ENOSPC", err)
	}
	b, _ := os.ReadFile(filepath.Join(f.Backing, "f"))
	if len(b) != 8192 || string(b[100:106]) != "inside" || b[200] != 'a' {
		t.Fatalf("backing after the overwrites: len %d, %q at 100, %q at 200", len(b), b[100:106], b[200])
	}
}

// TestMountOverAndRemount: MountOver keeps a directory's files (moved to
// the backing directory, seen through the mount), refuses to mount twice,
// and Remount after a crash shows what was synced only.
func TestMountOverAndRemount(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old"), []byte("before"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := MountOver(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Crash() })
	if got := read(t, filepath.Join(dir, "old")); string(got) != "before" {
		t.Fatalf("old file through the mount: %q", got)
	}
	if g, err := MountOver(dir); err == nil {
		_ = g.Crash()
		t.Fatal("a second MountOver of the same directory succeeded")
	}
	if _, err := f.Remount(); err == nil {
		t.Fatal("Remount of a mounted FS succeeded")
	}
	write(t, filepath.Join(dir, "synced"), []byte("kept"), true)
	write(t, filepath.Join(dir, "unsynced"), []byte("lost"), false)
	if f.DirtyBytes() == 0 {
		t.Fatal("no dirty bytes after an unsynced write")
	}
	if err := f.Crash(); err != nil {
		t.Fatal(err)
	}
	g, err := f.Remount()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Crash() })
	if got := read(t, filepath.Join(dir, "synced")); string(got) != "kept" {
		t.Errorf("synced file after the crash: %q", got)
	}
	if got := read(t, filepath.Join(dir, "unsynced")); len(got) != 0 {
		t.Errorf("unsynced file after the crash: %q, want empty", got)
	}
	if g.DirtyBytes() != 0 {
		t.Errorf("a remounted FS has %d dirty bytes", g.DirtyBytes())
	}
}

// TestCutFailsFsyncInFlight: an fsync still in its delay when the power is
// cut fails and syncs nothing; later operations fail with EIO; Crash then
// drops the data.
func TestCutFailsFsyncInFlight(t *testing.T) {
	f, _ := mount(t)
	p := filepath.Join(f.Mountpoint, "x")
	fd, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.Write(bytes.Repeat([]byte("a"), 8192)); err != nil {
		t.Fatal(err)
	}
	f.SetFsyncDelay(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- fd.Sync() }()
	time.Sleep(100 * time.Millisecond) // the fsync is in its delay
	if n := f.Cut(); n != 8192 {
		t.Errorf("Cut: %d dirty bytes, want 8192", n)
	}
	if err := <-done; !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync in flight at the cut: %v, want EIO", err)
	}
	if _, err := fd.Write([]byte("b")); !errors.Is(err, syscall.EIO) {
		t.Errorf("write after the cut: %v, want EIO", err)
	}
	fd.Close()
	g := remount(t, f)
	if got := read(t, filepath.Join(g.Mountpoint, "x")); len(got) != 0 {
		t.Errorf("after the cut and crash the file has %d bytes, want 0", len(got))
	}
}
