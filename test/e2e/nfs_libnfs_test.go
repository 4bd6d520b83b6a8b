package e2e

// NFS end to end with third-party clients: a 3-node cluster of `keel serve`
// processes, the libnfs utilities (nfs-cp, nfs-cat, nfs-ls) talking NFSv3 +
// MOUNT straight to the leader's nfs_addr, and keel's own Go client
// (internal/nfs/nfsclient) for what needs file handles.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// libnfsTimeout bounds one libnfs command (libnfs itself waits forever).
const libnfsTimeout = 2 * time.Minute

// requireLibnfsUtils skips the test without the libnfs utilities.
func requireLibnfsUtils(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"nfs-cp", "nfs-cat", "nfs-ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("libnfs-utils not installed: apt-get install libnfs-utils (CI installs it)")
		}
	}
}

// libnfsURL is the libnfs URL of vol/path on a node's NFS address, MOUNT on
// the same port (no portmapper).
func libnfsURL(t *testing.T, nfsAddr, vol, path string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(nfsAddr)
	if err != nil {
		t.Fatalf("nfs_addr %q: %v", nfsAddr, err)
	}
	p := "/" + vol
	if path = strings.Trim(path, "/"); path != "" {
		p += "/" + path
	}
	return fmt.Sprintf("nfs://%s%s?nfsport=%s&mountport=%s", host, p, port, port)
}

// libnfs runs a libnfs utility once and returns its standard output.
func libnfs(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), libnfsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s %s: no answer within %v: %s", name, strings.Join(args, " "), libnfsTimeout, errb.String())
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.Bytes(), nil
}

// goClient dials a node's NFS address as root with keel's Go client.
func goClient(t *testing.T, nfsAddr string) *nfsclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nfsclient.Dial(ctx, nfsAddr, nfsclient.Options{Machine: "keel-e2e"})
	if err != nil {
		t.Fatalf("dial NFS at %s: %v", nfsAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNFSLibnfsCopyAndFailover copies a 20 MiB file into a volume with
// nfs-cp through the leader's NFS port and checks it every way there is:
// nfs-cat and nfs-cp give back the same bytes, nfs-ls shows its size, keel's
// Go client reads it, and every data node holds the same sha256. Then the
// leader is killed (kill -9): the new leader serves the file under the very
// file handle the Go client got from the old one.
func TestNFSLibnfsCopyAndFailover(t *testing.T) {
	requireLibnfsUtils(t)
	c := startCluster(t, Shape{Data: 3, Steady: true})
	c.createVolume("data", 1<<30)
	r := runKeel(t, 30*time.Second, "volume", "export", "data", "--no-root-squash", "--clients", "127.0.0.0/8",
		"--config", c.Layout.ClientConfig)
	if r.Code != 0 {
		t.Fatalf("keel volume export: exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "no_root_squash") || !strings.Contains(r.Stdout, "127.0.0.0/8") {
		t.Fatalf("keel volume export printed %q; want /data 127.0.0.0/8(rw,no_root_squash,…)", r.Stdout)
	}
	leader := c.WaitLeader(30*time.Second, "")
	if leader.NFSAddr == "" {
		t.Fatalf("leader %s has no nfs_addr", leader.ID)
	}
	t.Logf("leader %s serves NFS at %s", leader.ID, leader.NFSAddr)

	const size = 20 << 20
	data := content("nfs-e2e:big.bin", size)
	tmp := t.TempDir()
	local := filepath.Join(tmp, "big.bin")
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	url := libnfsURL(t, leader.NFSAddr, "data", "big.bin")
	start := time.Now()
	if _, err := libnfs("nfs-cp", local, url); err != nil {
		t.Fatalf("nfs-cp in: %v", err)
	}
	t.Logf("nfs-cp of %d MiB in: %v", size>>20, time.Since(start).Round(time.Millisecond))

	out, err := libnfs("nfs-cat", url)
	if err != nil {
		t.Fatalf("nfs-cat: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("nfs-cat gave %d bytes (sha256 %s), want the %d bytes copied in (sha256 %s)", len(out), sum(out), size, sum(data))
	}
	back := filepath.Join(tmp, "back.bin")
	if _, err := libnfs("nfs-cp", url, back); err != nil {
		t.Fatalf("nfs-cp out: %v", err)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("nfs-cp out: %d bytes (sha256 %s), %v; want sha256 %s", len(got), sum(got), err, sum(data))
	}

	ls, err := libnfs("nfs-ls", libnfsURL(t, leader.NFSAddr, "data", ""))
	if err != nil {
		t.Fatalf("nfs-ls: %v", err)
	}
	if n, ok := lsSize(string(ls), "big.bin"); !ok || n != size {
		t.Fatalf("nfs-ls lists big.bin with size %d (listed: %v), want %d:\n%s", n, ok, size, ls)
	}

	// keel's Go client: the handle, the attributes, the bytes.
	gc := goClient(t, leader.NFSAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, mst, err := gc.Mount(ctx, "/data")
	if err != nil || mst != mount.MNT3_OK {
		t.Fatalf("MNT /data at the leader: %d %v", mst, err)
	}
	lk, st, err := gc.Lookup(ctx, root, "big.bin")
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP big.bin: %d %v", st, err)
	}
	handle := lk.Object.Data
	if a, ok := nfsclient.Attr(lk.ObjAttributes); !ok || a.Size != size || a.Uid != 0 {
		t.Fatalf("LOOKUP big.bin: attributes %+v; want size %d owned by root (no_root_squash)", lk.ObjAttributes, size)
	}
	got, err := gc.ReadFile(ctx, handle, 0, size)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Go client read %d bytes (sha256 %s), %v", len(got), sum(got), err)
	}

	// Every data node holds the same file.
	want := sum(data)
	for _, m := range c.DataMembers() {
		waitFor(t, 30*time.Second, "the file's sha256 on "+m.ID, func() (bool, string) {
			s, err := m.FileSum("data", "/big.bin")
			return err == nil && s == want, fmt.Sprintf("sha256 %q, %v (want %s)", s, err, want)
		})
	}

	// kill -9 the leader: the new one serves the same handle.
	old := leader
	old.Kill9()
	killed := time.Now()
	leader = c.WaitLeader(60*time.Second, old.ID)
	t.Logf("%s is the new leader %v after the kill; its NFS address is %s", leader.ID, time.Since(killed).Round(time.Millisecond), leader.NFSAddr)
	nc := goClient(t, leader.NFSAddr)
	var a *nfsv3.Fattr3
	waitFor(t, 60*time.Second, "GETATTR of the old handle at the new leader", func() (bool, string) {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		defer acancel()
		var err error
		a, st, err = nc.Getattr(actx, handle)
		if errors.Is(err, nfsclient.ErrClosed) { // dropped while the node took over
			nc = goClient(t, leader.NFSAddr)
		}
		return err == nil && st == nfsv3.NFS3_OK, fmt.Sprintf("status %d, %v", st, err)
	})
	if a.Size != size {
		t.Fatalf("GETATTR at the new leader: size %d, want %d", a.Size, size)
	}
	got, err = nc.ReadFile(ctx, handle, 0, size)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the old handle at the new leader: %d bytes (sha256 %s), %v", len(got), sum(got), err)
	}
	if h, mst, err := nc.Mount(ctx, "/data"); err != nil || mst != mount.MNT3_OK || !bytes.Equal(h, root) {
		t.Fatalf("MNT /data at the new leader: %d %v, root handle %x; the old leader gave %x", mst, err, h, root)
	}
	if lk, st, err := nc.Lookup(ctx, root, "big.bin"); err != nil || st != nfsv3.NFS3_OK || !bytes.Equal(lk.Object.Data, handle) {
		t.Fatalf("LOOKUP big.bin at the new leader: %d %v; want the old leader's handle %x", st, err, handle)
	}
	out, err = libnfs("nfs-cat", libnfsURL(t, leader.NFSAddr, "data", "big.bin"))
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("nfs-cat at the new leader: %d bytes (sha256 %s), %v", len(out), sum(out), err)
	}
}

// lsSize finds name in nfs-ls output ("-rw-r--r--  1  0  0  SIZE NAME"
// lines) and returns its size.
func lsSize(out, name string) (int64, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[len(f)-1] != name {
			continue
		}
		n, err := strconv.ParseInt(f[len(f)-2], 10, 64)
		return n, err == nil
	}
	return 0, false
}
