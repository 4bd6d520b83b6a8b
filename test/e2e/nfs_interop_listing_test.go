package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// TestInteropListing creates a directory of 10,000 files with keel's Go
// client (several connections, many CREATEs in flight) and checks that
// nfs-ls lists exactly those 10,000 names; then a file copied with nfs-cp
// into a/b/c/d (directories made with the Go client) reads back at depth
// with nfs-cat, and nfs-ls lists each level.
func TestInteropListing(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	gc := goClient(t, leader.NFSAddr)
	root := iopMount(t, gc)

	// 10,000 files in one directory.
	const n = 10000
	many := iopMkdirs(t, gc, root, "many")
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("file-%05d.dat", i)
	}
	took := iopCreateMany(t, leader.NFSAddr, many, names, 4, 32)
	t.Logf("created %d files over NFS in %v", n, took.Round(time.Millisecond))

	start := time.Now()
	ents := iopLs(t, libnfsURL(t, leader.NFSAddr, "data", "many"))
	t.Logf("nfs-ls of the directory took %v", time.Since(start).Round(time.Millisecond))
	got := iopNames(ents)
	if ok, diff := sameNames(got, names); !ok {
		t.Fatalf("nfs-ls data/many: %s", diff)
	}
	for _, e := range ents {
		if e.Mode != "-rw-r--r--" || e.Size != 0 || e.Nlink != 1 {
			t.Fatalf("nfs-ls data/many: %+v; want empty regular files of mode 0644", e)
		}
	}
	// keel's own READDIRPLUS agrees.
	if ok, diff := sameNames(iopReaddirNames(t, gc, many), names); !ok {
		t.Fatalf("READDIRPLUS data/many: %s", diff)
	}

	// Nested directories: a/b/c/d/file.
	iopMkdirs(t, gc, root, "a/b/c/d")
	data := content("interop-nested:a/b/c/d/file", 300<<10+7)
	local := writeLocal(t, t.TempDir(), "file", data)
	url := libnfsURL(t, leader.NFSAddr, "data", "a/b/c/d/file")
	if _, err := libnfs("nfs-cp", local, url); err != nil {
		t.Fatalf("nfs-cp into a/b/c/d: %v", err)
	}
	out, err := libnfs("nfs-cat", url)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("nfs-cat a/b/c/d/file: %d bytes (sha256 %s), %v; want %d bytes (sha256 %s)", len(out), sum(out), err, len(data), sum(data))
	}
	for _, lv := range []struct{ dir, entry string }{{"", "a"}, {"a", "b"}, {"a/b", "c"}, {"a/b/c", "d"}, {"a/b/c/d", "file"}} {
		ents := iopLs(t, libnfsURL(t, leader.NFSAddr, "data", lv.dir))
		e, ok := iopLsFind(ents, lv.entry)
		wantType := byte('d')
		if lv.entry == "file" {
			wantType = '-'
		}
		if !ok || e.Mode[0] != wantType {
			t.Fatalf("nfs-ls data/%s: entry %s is %+v (found %v), want type %c", lv.dir, lv.entry, e, ok, wantType)
		}
		if lv.entry == "file" && e.Size != int64(len(data)) {
			t.Fatalf("nfs-ls data/a/b/c/d: file has size %d, want %d", e.Size, len(data))
		}
	}
	// The Go client finds the same bytes by walking the path.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, st, err := gc.LookupPath(ctx, root, "a/b/c/d/file")
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP a/b/c/d/file: status %d, %v", st, err)
	}
	if b, err := gc.ReadFile(ctx, h, 64<<10, len(data)); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("Go client read of a/b/c/d/file: %d bytes, %v", len(b), err)
	}
}
