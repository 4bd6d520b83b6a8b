package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	u, _ := url.Parse("file://" + t.TempDir() + "/backups")
	s, err := Open(u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBackupPutGetStatListDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("hello")
	for _, k := range []string{"chunks/ab/abc", "chunks/cd/cde", "backups/v/1.json"} {
		if err := s.Put(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "chunks/ab/abc")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "hello" {
		t.Fatalf("get: %q", got)
	}
	if size, ok, err := s.Stat(ctx, "chunks/cd/cde"); size != 5 || !ok || err != nil {
		t.Fatalf("stat: %d %v %v", size, ok, err)
	}
	if _, ok, err := s.Stat(ctx, "chunks/xx/none"); ok || err != nil {
		t.Fatalf("stat of a missing key: %v %v", ok, err)
	}
	if _, err := s.Get(ctx, "chunks/xx/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("get of a missing key: %v", err)
	}
	for prefix, want := range map[string]string{
		"chunks/":    "chunks/ab/abc chunks/cd/cde",
		"chunks/a":   "chunks/ab/abc",
		"backups/v/": "backups/v/1.json",
		"":           "backups/v/1.json chunks/ab/abc chunks/cd/cde",
		"locks/":     "",
	} {
		keys, err := s.List(ctx, prefix)
		if err != nil || strings.Join(keys, " ") != want {
			t.Errorf("list %q: %v %v, want %s", prefix, keys, err, want)
		}
	}
	if err := s.Delete(ctx, "chunks/ab/abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "chunks/ab/abc"); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	if _, ok, _ := s.Stat(ctx, "chunks/ab/abc"); ok {
		t.Fatal("deleted key still there")
	}
}

// failingReader gives some bytes, then an error: an interrupted upload.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection lost")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestBackupInterruptedPutLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Put(ctx, "chunks/ab/x", &failingReader{1000}, 5000); err == nil {
		t.Fatal("put from a failing reader worked")
	}
	if err := s.Put(ctx, "chunks/ab/y", strings.NewReader("short"), 6); err == nil {
		t.Fatal("put of fewer bytes than announced worked")
	}
	if err := s.Put(ctx, "chunks/ab/z", strings.NewReader("longer"), 3); err == nil {
		t.Fatal("put of more bytes than announced worked")
	}
	keys, _ := s.List(ctx, "")
	if len(keys) != 0 {
		t.Fatalf("failed puts left %v", keys)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "chunks", "ab"))
	if len(ents) != 0 {
		t.Fatalf("failed puts left files %v", ents)
	}
	// A temporary file of a crashed process is not listed.
	os.WriteFile(filepath.Join(s.Root(), "chunks", "ab", tmpPrefix+"q-1"), []byte("x"), 0o600)
	if keys, _ := s.List(ctx, "chunks/"); len(keys) != 0 {
		t.Fatalf("a temporary file is listed: %v", keys)
	}
}

func TestBackupBadKeysAndURLs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, k := range []string{"", "/abs", "a/../../x", "a//b", "dir/", ".tmp-x", "a/./b"} {
		if err := s.Put(ctx, k, strings.NewReader(""), 0); err == nil {
			t.Errorf("put %q worked", k)
		}
	}
	for _, raw := range []string{"file://host/x", "file:relative", "file:///x?y=1"} {
		u, _ := url.Parse(raw)
		if _, err := Open(u); err == nil {
			t.Errorf("open %s worked", raw)
		}
	}
}

func TestBackupSweepStale(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Put(ctx, "chunks/ab/abc", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root(), "chunks", "ab")
	old, fresh := filepath.Join(dir, tmpPrefix+"abd-123"), filepath.Join(dir, tmpPrefix+"abe-456")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepStale(ctx, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d removed, %v", n, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the day-old temporary file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file (an upload in progress) was removed: %v", err)
	}
	if _, ok, err := s.Stat(ctx, "chunks/ab/abc"); !ok || err != nil {
		t.Errorf("the object was removed: %v", err)
	}
}
