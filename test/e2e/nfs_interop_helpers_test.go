package e2e

// Helpers of the NFS interoperability tests (nfs_interop_*_test.go): a
// 3-data-node cluster of `keel serve` processes with volume "data" exported
// to 127.0.0.0/8 without root squashing, driven by the libnfs utilities
// (nfs-cp, nfs-cat, nfs-ls), by a third-party Go NFS client library
// (github.com/willscott/go-nfs-client) and by keel's own Go client
// (internal/nfs/nfsclient) where a test needs handles, xids or many calls
// in flight. The helpers of nfs_libnfs_test.go (libnfs, libnfsURL,
// goClient, requireLibnfsUtils) and of the failover tests (exportVolume,
// keel) are reused.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// iopCluster starts a cluster of three data nodes (steady raft timings, so
// that only the tests move leadership) and exports volume "data" with
// `keel volume export data --no-root-squash --clients 127.0.0.0/8`.
func iopCluster(t *testing.T) *Cluster {
	t.Helper()
	requireLibnfsUtils(t)
	c := startCluster(t, Shape{Data: 3, Steady: true})
	c.exportVolume("data")
	return c
}

// iopLeader waits for a leader whose NFS service answers MNT /data and
// GETATTR of the root with NFS3_OK, and returns it.
func iopLeader(t *testing.T, c *Cluster) *Member {
	t.Helper()
	var leader *Member
	waitFor(t, 60*time.Second, "a leader serving /data over NFS", func() (bool, string) {
		leader = c.WaitLeader(30*time.Second, "")
		return iopNFSReady(leader.NFSAddr)
	})
	return leader
}

// iopNFSReady reports whether addr answers MNT /data and GETATTR of its root.
func iopNFSReady(addr string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gc, err := nfsclient.Dial(ctx, addr, nfsclient.Options{Machine: "keel-e2e-probe"})
	if err != nil {
		return false, err.Error()
	}
	defer gc.Close()
	root, mst, err := gc.Mount(ctx, "/data")
	if err != nil || mst != mount.MNT3_OK {
		return false, fmt.Sprintf("MNT /data at %s: status %d, %v", addr, mst, err)
	}
	if _, st, err := gc.Getattr(ctx, root); err != nil || st != nfsv3.NFS3_OK {
		return false, fmt.Sprintf("GETATTR of the root at %s: status %d, %v", addr, st, err)
	}
	return true, ""
}

// iopMount mounts /data with keel's Go client and returns the root handle.
func iopMount(t *testing.T, gc *nfsclient.Client) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root, mst, err := gc.Mount(ctx, "/data")
	if err != nil || mst != mount.MNT3_OK {
		t.Fatalf("MNT /data: status %d, %v", mst, err)
	}
	return root
}

// iopMkdirs makes each directory of a slash-separated path under root
// with keel's Go client (MKDIR, mode 0755) and returns the last one's
// handle.
func iopMkdirs(t *testing.T, gc *nfsclient.Client, root []byte, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := root
	mode := uint32(0o755)
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		r, st, err := gc.Mkdir(ctx, h, name, nfsclient.Set{Mode: &mode})
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("MKDIR %s (in %s): status %d, %v", name, path, st, err)
		}
		if h = nfsclient.Handle(r.Obj); h == nil {
			t.Fatalf("MKDIR %s returned no handle", name)
		}
	}
	return h
}

// iopCreateMany creates empty files names in directory dir (CREATE
// GUARDED, mode 0644) over conns connections to addr, with perConn calls in
// flight on each, and returns how long it took.
func iopCreateMany(t *testing.T, addr string, dir []byte, names []string, conns, perConn int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	work := make(chan string, len(names))
	for _, n := range names {
		work <- n
	}
	close(work)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	start := time.Now()
	mode := uint32(0o644)
	for i := 0; i < conns; i++ {
		gc := goClient(t, addr)
		for j := 0; j < perConn; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range work {
					_, st, err := gc.Create(ctx, dir, name, nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
					if err != nil || st != nfsv3.NFS3_OK {
						mu.Lock()
						errs = append(errs, fmt.Sprintf("CREATE %s: status %d, %v", name, st, err))
						mu.Unlock()
						if err != nil {
							return // the connection is gone or the time is up
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	took := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d CREATEs failed, e.g. %s", len(errs), len(names), errs[0])
	}
	return took
}

// iopReaddirNames lists a directory with keel's Go client (READDIRPLUS,
// "." and ".." left out).
func iopReaddirNames(t *testing.T, gc *nfsclient.Client, dir []byte) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ents, st, err := gc.ReaddirPlus(ctx, dir, 0)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("READDIRPLUS: status %d, %v", st, err)
	}
	var names []string
	for _, e := range ents {
		if e.Name != "." && e.Name != ".." {
			names = append(names, e.Name)
		}
	}
	return names
}

// lsEntry is one line of nfs-ls output: "-rw-r--r--  1  0  0  SIZE NAME".
type lsEntry struct {
	Mode  string // e.g. "-rw-r--r--", "drwxr-xr-x", "lrwxrwxrwx"
	Nlink int
	Size  int64
	Name  string
}

// iopLs runs nfs-ls on url and parses its lines.
func iopLs(t *testing.T, url string) []lsEntry {
	t.Helper()
	out, err := libnfs("nfs-ls", url)
	if err != nil {
		t.Fatalf("nfs-ls: %v", err)
	}
	var ents []lsEntry
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("nfs-ls %s: cannot parse line %q", url, line)
		}
		var e lsEntry
		e.Mode, e.Name = f[0], f[len(f)-1]
		if _, err := fmt.Sscan(f[1], &e.Nlink); err != nil {
			t.Fatalf("nfs-ls %s: link count in %q: %v", url, line, err)
		}
		if _, err := fmt.Sscan(f[len(f)-2], &e.Size); err != nil {
			t.Fatalf("nfs-ls %s: size in %q: %v", url, line, err)
		}
		ents = append(ents, e)
	}
	return ents
}

// iopLsFind returns the entry called name.
func iopLsFind(ents []lsEntry, name string) (lsEntry, bool) {
	for _, e := range ents {
		if e.Name == name {
			return e, true
		}
	}
	return lsEntry{}, false
}

// iopNames returns the names of nfs-ls entries, sorted.
func iopNames(ents []lsEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// sameNames compares two name lists as sets and describes the first
// differences.
func sameNames(got, want []string) (bool, string) {
	g := map[string]int{}
	for _, n := range got {
		g[n]++
	}
	var missing, extra, dup []string
	for _, n := range want {
		if g[n] == 0 {
			missing = append(missing, n)
		}
	}
	w := map[string]bool{}
	for _, n := range want {
		w[n] = true
	}
	for n, k := range g {
		if !w[n] {
			extra = append(extra, n)
		}
		if k > 1 {
			dup = append(dup, n)
		}
	}
	if len(missing)+len(extra)+len(dup) == 0 && len(got) == len(want) {
		return true, ""
	}
	cut := func(s []string) []string {
		sort.Strings(s)
		if len(s) > 5 {
			return append(s[:5:5], "…")
		}
		return s
	}
	return false, fmt.Sprintf("%d names, want %d; missing %d %v, unexpected %d %v, repeated %d %v",
		len(got), len(want), len(missing), cut(missing), len(extra), cut(extra), len(dup), cut(dup))
}

// fileSum returns the sha256 of a local file.
func fileSum(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), int64(len(b))
}

// writeLocal writes data to a new file in dir and returns its path.
func writeLocal(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// within runs fn and fails the test if it does not return within d (the
// third-party client retransmits forever on its own; the test must not).
func within(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
	}
}

// iopDial connects keel's Go NFS client to addr as AUTH_SYS machine
// machine, closed when the test ends.
func iopDial(t *testing.T, ctx context.Context, addr, machine string) *nfsclient.Client {
	t.Helper()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	gc, err := nfsclient.Dial(dctx, addr, nfsclient.Options{Machine: machine})
	if err != nil {
		t.Fatalf("dial NFS at %s: %v", addr, err)
	}
	t.Cleanup(func() { gc.Close() })
	return gc
}
