package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"keel/internal/nfs/nfsclient"
)

// portmapAddr is where NFS clients look for a portmapper when a URL names
// no ports.
const portmapAddr = "127.0.0.1:111"

// TestInteropPortmapURLs gives one node a portmapper on 127.0.0.1:111
// (node.portmap_addr), makes it the leader with `keel failover --to`, and
// then uses libnfs URLs without nfsport/mountport: libnfs asks that
// portmapper for MOUNT and NFS, which must lead it to the node's nfs_addr.
// Needs port 111 free (it is in CI; a machine running rpcbind skips).
func TestInteropPortmapURLs(t *testing.T) {
	requireLibnfsUtils(t)
	requireBinary(t)
	ln, err := net.Listen("tcp", portmapAddr)
	if err != nil {
		t.Skipf("cannot listen on %s (%v): rpcbind or another portmapper holds it (or this is not root); "+
			"this test needs the port free for keel's portmap_addr", portmapAddr, err)
	}
	ln.Close()

	c := initCluster(t, Shape{Data: 3, Steady: true})
	pm := c.Members[0]
	editYAML(t, pm.Config, func(doc map[string]any) { section(doc, "node")["portmap_addr"] = portmapAddr })
	c.StartAll()
	leader := c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	if !listening(portmapAddr) {
		t.Fatalf("%s (portmap_addr %s) does not accept connections on it", pm.ID, portmapAddr)
	}

	// Make the node with the portmapper the leader.
	if leader != pm {
		start := time.Now()
		if r := c.keel(30*time.Second, "failover", "--to", pm.ID); r.Code != 0 {
			t.Fatalf("keel failover --to %s: exit %d: %s%s", pm.ID, r.Code, r.Stdout, r.Stderr)
		}
		waitFor(t, 30*time.Second, pm.ID+" leading", func() (bool, string) {
			st := c.Status()
			return st.Leader == pm.ID, fmt.Sprintf("leader %q term %d", st.Leader, st.Term)
		})
		t.Logf("keel failover --to %s (from %s) took %v", pm.ID, leader.ID, time.Since(start).Round(time.Millisecond))
	}
	waitFor(t, 30*time.Second, pm.ID+" serving /data over NFS", func() (bool, string) { return iopNFSReady(pm.NFSAddr) })

	// What a client learns from the portmapper: MOUNT v3 and NFS v3 over
	// TCP at the node's nfs_addr.
	_, portStr, _ := net.SplitHostPort(pm.NFSAddr)
	nfsPort, _ := strconv.Atoi(portStr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc := goClient(t, portmapAddr)
	for _, p := range []struct {
		name       string
		prog, vers uint32
	}{{"MOUNT", nfsclient.MountProgram, 3}, {"NFS", nfsclient.NFSProgram, 3}} {
		port, err := pc.GetPort(ctx, p.prog, p.vers, nfsclient.IPProtoTCP)
		if err != nil || port != uint32(nfsPort) {
			t.Fatalf("portmapper at %s: GETPORT %s v%d tcp = %d, %v; want %d (%s's nfs_addr %s)", portmapAddr, p.name, p.vers, port, err, nfsPort, pm.ID, pm.NFSAddr)
		}
	}

	// libnfs URLs without ports.
	tmp := t.TempDir()
	data := content("interop-portmap:pm.bin", 3<<20+11)
	local := writeLocal(t, tmp, "pm.bin", data)
	if _, err := libnfs("nfs-cp", local, "nfs://127.0.0.1/data/pm.bin"); err != nil {
		t.Fatalf("nfs-cp into nfs://127.0.0.1/data/pm.bin (no ports): %v", err)
	}
	ents := iopLs(t, "nfs://127.0.0.1/data")
	if e, ok := iopLsFind(ents, "pm.bin"); !ok || e.Size != int64(len(data)) {
		t.Fatalf("nfs-ls nfs://127.0.0.1/data lists pm.bin as %+v (found %v); want %d bytes; listing: %v", e, ok, len(data), iopNames(ents))
	}
	back := filepath.Join(tmp, "back.bin")
	if _, err := libnfs("nfs-cp", "nfs://127.0.0.1/data/pm.bin", back); err != nil {
		t.Fatalf("nfs-cp out of nfs://127.0.0.1/data/pm.bin (no ports): %v", err)
	}
	if got, n := fileSum(t, back); got != sum(data) {
		t.Fatalf("nfs-cp out (no ports): %d bytes, sha256 %s; want %d bytes, sha256 %s", n, got, len(data), sum(data))
	}
	if out, err := libnfs("nfs-cat", "nfs://127.0.0.1/data/pm.bin"); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("nfs-cat nfs://127.0.0.1/data/pm.bin (no ports): %d bytes, %v", len(out), err)
	}
	// The same file through the explicit-port URL of the node.
	if out, err := libnfs("nfs-cat", libnfsURL(t, pm.NFSAddr, "data", "pm.bin")); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("nfs-cat with explicit ports: %d bytes, %v", len(out), err)
	}
}
