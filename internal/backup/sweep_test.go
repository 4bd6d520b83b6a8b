package backup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keel/internal/backup/file"
)

// Prune removes what a crashed upload left in a file store, once it is a
// day old.
func TestPruneSweepsDeadUploads(t *testing.T) {
	dir := t.TempDir()
	st, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "chunks", "ab", ".tmp-abcd-1234")
	if err := os.MkdirAll(filepath.Dir(left), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, []byte("half a chunk"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-lockMaxAge - time.Hour)
	if err := os.Chtimes(left, past, past); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := Prune(ctx, st, PruneOptions{KeepLast: 1, DryRun: true}); err != nil || res.StaleRemoved != 0 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	res, err := Prune(ctx, st, PruneOptions{KeepLast: 1})
	if err != nil || res.StaleRemoved != 1 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the dead upload's file is still there: %v", err)
	}
}
