package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestVolumeCLI drives volumes through the keel CLI against a running
// cluster (default raft timings): the size limit is enforced without partial
// writes, a volume cannot shrink below what it holds, and a volume holding
// files is deleted only with --force.
func TestVolumeCLI(t *testing.T) {
	c := startCluster(t, Shape{Data: 3})
	tmp := t.TempDir()
	keel := func(args ...string) cmdResult {
		t.Helper()
		return runKeel(t, 60*time.Second, append(args, "--dir", c.Dir)...)
	}
	mustOK := func(r cmdResult, what string) {
		t.Helper()
		if r.Code != 0 {
			t.Fatalf("%s: exit %d: %s", what, r.Code, r.Stderr)
		}
	}
	volume := func(name string) (cluster.VolumeInfo, bool) {
		t.Helper()
		r := keel("volume", "list", "--json")
		mustOK(r, "keel volume list --json")
		var vols []cluster.VolumeInfo
		if err := json.Unmarshal([]byte(r.Stdout), &vols); err != nil {
			t.Fatalf("keel volume list --json: %v\n%s", err, r.Stdout)
		}
		for _, v := range vols {
			if v.Name == name {
				return v, true
			}
		}
		return cluster.VolumeInfo{}, false
	}
	localFile := func(name string, size int) (string, []byte) {
		t.Helper()
		data := content(t.Name()+"/"+name, size)
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p, data
	}

	mustOK(keel("volume", "create", "v1", "--size", "1MiB"), "keel volume create v1 --size 1MiB")
	v, ok := volume("v1")
	if !ok || v.SizeBytes != 1<<20 || v.UsedBytes != 0 {
		t.Fatalf("after create: v1 = %+v (listed %v), want size 1 MiB, 0 used", v, ok)
	}

	a, aData := localFile("a.bin", 600<<10)
	mustOK(keel("fs", "put", a, "v1:/a.bin"), "keel fs put of 600 KiB into a 1 MiB volume")
	v, _ = volume("v1")
	if v.UsedBytes != 600<<10 {
		t.Errorf("after a 600 KiB put: used %d bytes, want %d", v.UsedBytes, 600<<10)
	}

	b, _ := localFile("b.bin", 600<<10)
	r := keel("fs", "put", b, "v1:/b.bin")
	if r.Code == 0 {
		t.Fatalf("a second 600 KiB put into a 1 MiB volume holding 600 KiB succeeded")
	}
	if !strings.Contains(r.Stderr, "ENOSPC") && !strings.Contains(strings.ToLower(r.Stderr), "no space") {
		t.Errorf("the refused put's error does not say ENOSPC or no space: %s", r.Stderr)
	}
	v2, _ := volume("v1")
	if v2.UsedBytes != v.UsedBytes {
		t.Errorf("the refused put changed the volume's use: %d bytes before, %d after (a partial write?)", v.UsedBytes, v2.UsedBytes)
	}
	// (Read through the admin client: `keel fs cat` of large files is
	// TestFsPutCat's subject.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	got, err := c.Client.GetFile(ctx, "v1", "/a.bin")
	cancel()
	if err != nil || sum(got) != sum(aData) {
		t.Errorf("a.bin after the refused put: %d bytes (err %v), want its %d bytes", len(got), err, len(aData))
	}

	r = keel("volume", "resize", "v1", "--size", "512KiB")
	if r.Code == 0 {
		t.Errorf("resizing v1 to 512 KiB, below its %d bytes in use, succeeded", v2.UsedBytes)
	}
	if v, _ := volume("v1"); v.SizeBytes != 1<<20 {
		t.Errorf("after the refused shrink: size %d, want %d", v.SizeBytes, 1<<20)
	}
	t.Logf("shrink below use refused: %s", strings.TrimSpace(r.Stderr))

	mustOK(keel("volume", "resize", "v1", "--size", "4MiB"), "keel volume resize v1 --size 4MiB")
	if v, _ := volume("v1"); v.SizeBytes != 4<<20 || v.UsedBytes != v2.UsedBytes {
		t.Errorf("after resize to 4 MiB: %+v, want size %d and use unchanged (%d)", v, 4<<20, v2.UsedBytes)
	}
	mustOK(keel("fs", "put", b, "v1:/b.bin"), "the 600 KiB put that did not fit before, after growing v1")

	r = keel("volume", "delete", "v1")
	if r.Code == 0 {
		t.Errorf("deleting v1, which holds files, without --force succeeded")
	}
	if _, ok := volume("v1"); !ok {
		t.Fatalf("v1 is gone after a refused delete")
	}
	t.Logf("delete without --force refused: %s", strings.TrimSpace(r.Stderr))
	mustOK(keel("volume", "delete", "v1", "--force"), "keel volume delete v1 --force")
	if v, ok := volume("v1"); ok {
		t.Errorf("v1 still listed after delete --force: %+v", v)
	}
}

// TestFailedPutIsAtomic checks that a put refused for lack of space changes
// nothing: `keel fs put` promises to replace a file's contents, so a put
// that fails must leave the old contents, and must not use any of the
// volume's space.
func TestFailedPutIsAtomic(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Fast: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	used := func(t *testing.T, name string) uint64 {
		t.Helper()
		vols, err := c.Client.Volumes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vols {
			if v.Name == name {
				return v.UsedBytes
			}
		}
		t.Fatalf("no volume %s", name)
		return 0
	}
	create := func(t *testing.T, name string, size uint64) {
		t.Helper()
		if _, err := c.Client.CreateVolume(ctx, name, size); err != nil {
			t.Fatalf("create volume %s: %v", name, err)
		}
	}
	isENOSPC := func(err error) bool {
		var ae *cluster.APIError
		return errors.As(err, &ae) && ae.Body.Errno == "ENOSPC"
	}

	t.Run("replacing_keeps_old_contents", func(t *testing.T) {
		create(t, "small", 1<<20)
		old := content("small:/f", 100<<10)
		if err := c.Client.PutFile(ctx, "small", "/f", old, false); err != nil {
			t.Fatal(err)
		}
		err := c.Client.PutFile(ctx, "small", "/f", content("small:/f new", 1536<<10), false)
		if !isENOSPC(err) {
			t.Fatalf("putting 1.5 MiB over a file in a 1 MiB volume: err %v, want ENOSPC", err)
		}
		got, err := c.Client.GetFile(ctx, "small", "/f")
		if err != nil {
			t.Fatal(err)
		}
		if sum(got) != sum(old) {
			t.Errorf("after the refused put, /f holds %d bytes that are not its old contents (%d bytes): the failed put destroyed them",
				len(got), len(old))
		}
		if u := used(t, "small"); u != uint64(len(old)) {
			t.Errorf("after the refused put the volume uses %d bytes, want %d", u, len(old))
		}
	})

	t.Run("multi_MiB_put_writes_nothing", func(t *testing.T) {
		create(t, "four", 4<<20)
		if err := c.Client.PutFile(ctx, "four", "/a", content("four:/a", 1<<20), false); err != nil {
			t.Fatal(err)
		}
		before := used(t, "four")
		err := c.Client.PutFile(ctx, "four", "/b", content("four:/b", 3500<<10), false)
		if !isENOSPC(err) {
			t.Fatalf("putting 3.4 MiB into a 4 MiB volume holding 1 MiB: err %v, want ENOSPC", err)
		}
		if after := used(t, "four"); after != before {
			t.Errorf("the refused put changed the volume's use from %d to %d bytes: part of the file was written", before, after)
		}
		got, err := c.Client.GetFile(ctx, "four", "/b")
		if err == nil && len(got) > 0 {
			t.Errorf("after the refused put, /b holds %d bytes of the file", len(got))
		}
	})
}
