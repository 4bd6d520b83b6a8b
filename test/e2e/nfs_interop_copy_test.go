package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestInteropCopySizes copies files of 0 B, 1 B, 1 MiB + 1 and 100 MiB of
// random content into the volume with nfs-cp through the leader's NFS port
// (nfsport and mountport in the URL) and back out again: what comes out is
// byte-identical (sha256) to what went in, nfs-ls shows the sizes, and every
// data node holds the same bytes.
func TestInteropCopySizes(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	tmp := t.TempDir()
	files := []struct {
		name string
		size int
	}{
		{"empty.bin", 0},
		{"one.bin", 1},
		{"mib-plus-one.bin", 1<<20 + 1},
		{"hundred-mib.bin", 100 << 20},
	}
	for _, f := range files {
		data := content("interop-copy:"+f.name, f.size)
		want := sum(data)
		in := writeLocal(t, tmp, f.name, data)
		url := libnfsURL(t, leader.NFSAddr, "data", f.name)

		start := time.Now()
		if _, err := libnfs("nfs-cp", in, url); err != nil {
			t.Fatalf("nfs-cp %s in (%d bytes): %v", f.name, f.size, err)
		}
		tookIn := time.Since(start)

		out := filepath.Join(tmp, "back-"+f.name)
		start = time.Now()
		if _, err := libnfs("nfs-cp", url, out); err != nil {
			t.Fatalf("nfs-cp %s out: %v", f.name, err)
		}
		tookOut := time.Since(start)
		got, n := fileSum(t, out)
		if got != want || n != int64(f.size) {
			t.Fatalf("nfs-cp %s out: %d bytes, sha256 %s; copied in %d bytes, sha256 %s", f.name, n, got, f.size, want)
		}
		t.Logf("%s (%d bytes): nfs-cp in %v, out %v, sha256 %s", f.name, f.size,
			tookIn.Round(time.Millisecond), tookOut.Round(time.Millisecond), want[:16])
		os.Remove(out)
	}

	ents := iopLs(t, libnfsURL(t, leader.NFSAddr, "data", ""))
	for _, f := range files {
		e, ok := iopLsFind(ents, f.name)
		if !ok || e.Size != int64(f.size) || e.Mode[0] != '-' {
			t.Errorf("nfs-ls lists %s as %+v (found %v); want a regular file of %d bytes", f.name, e, ok, f.size)
		}
	}

	// The copies are replicated: every data node holds the same bytes.
	for _, f := range files {
		want := sum(content("interop-copy:"+f.name, f.size))
		for _, m := range c.DataMembers() {
			waitFor(t, 30*time.Second, fmt.Sprintf("sha256 of %s on %s", f.name, m.ID), func() (bool, string) {
				s, err := m.FileSum("data", "/"+f.name)
				return err == nil && s == want, fmt.Sprintf("sha256 %q, %v (want %s)", s, err, want)
			})
		}
	}
}
