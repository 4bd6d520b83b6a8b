package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestFsPutCat copies files of several sizes into a volume with `keel fs
// put` and back out with `keel fs cat`, as a user without an NFS client
// would: what comes out is what went in, and `keel fs ls` lists the sizes.
func TestFsPutCat(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.createVolume("data", 1<<30)
	tmp := t.TempDir()
	sizes := []int{0, 1, 4 << 10, 600 << 10, 5 << 20}
	for _, size := range sizes {
		t.Run(fmt.Sprintf("%d_bytes", size), func(t *testing.T) {
			data := content(fmt.Sprintf("fs:%d", size), size)
			if size == 0 {
				data = nil
			}
			local := filepath.Join(tmp, fmt.Sprintf("f%d", size))
			if err := os.WriteFile(local, data, 0o600); err != nil {
				t.Fatal(err)
			}
			target := fmt.Sprintf("data:/dir/f%d", size)
			if r := runKeel(t, 60*time.Second, "fs", "put", "-p", local, target, "--dir", c.Dir); r.Code != 0 {
				t.Fatalf("keel fs put %s: exit %d: %s", target, r.Code, r.Stderr)
			}
			r := runKeel(t, 60*time.Second, "fs", "cat", target, "--dir", c.Dir)
			if r.Code != 0 {
				t.Fatalf("keel fs cat %s: exit %d: %s", target, r.Code, r.Stderr)
			}
			if len(r.Stdout) != len(data) || sum([]byte(r.Stdout)) != sum(data) {
				t.Errorf("keel fs cat %s printed %d bytes (sha256 %s), want the %d bytes put (sha256 %s)",
					target, len(r.Stdout), sum([]byte(r.Stdout)), len(data), sum(data))
			}
		})
	}
	r := runKeel(t, 30*time.Second, "fs", "ls", "data:/dir", "--json", "--dir", c.Dir)
	if r.Code != 0 {
		t.Fatalf("keel fs ls: exit %d: %s", r.Code, r.Stderr)
	}
	var ents []cluster.DirEntry
	if err := json.Unmarshal([]byte(r.Stdout), &ents); err != nil {
		t.Fatalf("keel fs ls --json: %v\n%s", err, r.Stdout)
	}
	listed := map[string]uint64{}
	for _, e := range ents {
		listed[e.Name] = e.Size
	}
	for _, size := range sizes {
		name := fmt.Sprintf("f%d", size)
		if got, ok := listed[name]; !ok || got != uint64(size) {
			t.Errorf("keel fs ls --json: %s listed %v with size %d, want size %d", name, ok, got, size)
		}
	}
}
