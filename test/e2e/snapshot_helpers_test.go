package e2e

// Helpers of the volume snapshot tests (snapshot_*_test.go): the keel CLI
// (`keel snapshot create/list`, `keel volume list/clone/revert`), trees of
// files read over NFS with the libnfs utilities (nfs-ls, nfs-cat) from a
// volume (/data) or a snapshot (/data@NAME), and keel's Go NFS client for
// what libnfs cannot do (mkdir, remove, rename, in-place writes, truncation,
// handles). The cluster comes from iopCluster; libnfs and goClient from
// nfs_libnfs_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/cluster"
	"keel/internal/nfs/nfsclient"
)

// snapTree is what a volume or snapshot holds, as read over NFS: file path
// → content, and directory path + "/" → nil. Paths start with "/".
type snapTree map[string][]byte

func (s snapTree) clone() snapTree {
	out := snapTree{}
	for k, v := range s {
		out[k] = v
	}
	return out
}

// usedBytes is the sum of the file sizes.
func (s snapTree) usedBytes() uint64 {
	var n uint64
	for k, v := range s {
		if !strings.HasSuffix(k, "/") {
			n += uint64(len(v))
		}
	}
	return n
}

// diff describes how got differs from want ("" if it does not).
func (want snapTree) diff(got snapTree) string {
	var out []string
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		w, inW := want[k]
		g, inG := got[k]
		switch {
		case !inG:
			out = append(out, fmt.Sprintf("%s missing (want %d bytes sha256 %.12s)", k, len(w), sum(w)))
		case !inW:
			out = append(out, fmt.Sprintf("%s unexpected (%d bytes sha256 %.12s)", k, len(g), sum(g)))
		case !bytes.Equal(w, g):
			out = append(out, fmt.Sprintf("%s differs: %d bytes sha256 %.12s, want %d bytes sha256 %.12s", k, len(g), sum(g), len(w), sum(w)))
		}
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("… and %d more", len(out)-12))
	}
	return strings.Join(out, "; ")
}

// snapURL is the libnfs URL of path in export (a volume "data" or a
// snapshot "data@s1") at a node's NFS address, MOUNT on the same port.
func snapURL(nfsAddr, export, path string) string {
	host, port, _ := net.SplitHostPort(nfsAddr)
	p := "/" + export
	if path = strings.Trim(path, "/"); path != "" {
		p += "/" + path
	}
	return fmt.Sprintf("nfs://%s%s?nfsport=%s&mountport=%s", host, p, port, port)
}

// snapLs lists a directory with nfs-ls: name → entry, "." and ".." left out.
func snapLs(nfsAddr, export, dir string) (map[string]lsEntry, error) {
	out, err := libnfs("nfs-ls", snapURL(nfsAddr, export, dir))
	if err != nil {
		return nil, err
	}
	ents := map[string]lsEntry{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 {
			return nil, fmt.Errorf("nfs-ls %s: cannot parse line %q", snapURL(nfsAddr, export, dir), line)
		}
		var e lsEntry
		e.Mode, e.Name = f[0], f[len(f)-1]
		if _, err := fmt.Sscan(f[len(f)-2], &e.Size); err != nil {
			return nil, fmt.Errorf("nfs-ls: size in %q: %v", line, err)
		}
		if e.Name != "." && e.Name != ".." {
			ents[e.Name] = e
		}
	}
	return ents, nil
}

// snapReadTree reads every directory (nfs-ls) and file (nfs-cat) of export
// at a node's NFS address. It checks that nfs-ls and nfs-cat agree on each
// file's size.
func snapReadTree(nfsAddr, export string) (snapTree, error) {
	tree := snapTree{}
	dirs := []string{"/"}
	for i := 0; i < len(dirs) && i < 1000; i++ {
		dir := dirs[i]
		ents, err := snapLs(nfsAddr, export, dir)
		if err != nil {
			return nil, err
		}
		for name, e := range ents {
			p := dir + name
			switch e.Mode[0] {
			case 'd':
				tree[p+"/"] = nil
				dirs = append(dirs, p+"/")
			case '-':
				b, err := libnfs("nfs-cat", snapURL(nfsAddr, export, p))
				if err != nil {
					return nil, err
				}
				if int64(len(b)) != e.Size {
					return nil, fmt.Errorf("%s:%s: nfs-ls says %d bytes, nfs-cat read %d", export, p, e.Size, len(b))
				}
				if b == nil {
					b = []byte{}
				}
				tree[p] = b
			default:
				return nil, fmt.Errorf("%s:%s: unexpected type %q", export, p, e.Mode)
			}
		}
	}
	return tree, nil
}

// snapMustTree is snapReadTree failing the test on error.
func snapMustTree(t *testing.T, nfsAddr, export string) snapTree {
	t.Helper()
	tree, err := snapReadTree(nfsAddr, export)
	if err != nil {
		t.Fatalf("read %s over NFS at %s: %v", export, nfsAddr, err)
	}
	return tree
}

// snapCheckTree reads export over NFS and fails the test if it is not want.
func snapCheckTree(t *testing.T, nfsAddr, export string, want snapTree, what string) {
	t.Helper()
	got := snapMustTree(t, nfsAddr, export)
	if d := want.diff(got); d != "" {
		t.Fatalf("%s: /%s at %s (%d entries) is not what it should be (%d entries): %s", what, export, nfsAddr, len(got), len(want), d)
	}
}

// snapPut copies data to export:path with one nfs-cp (a new file: nfs-cp
// creates GUARDED).
func snapPut(t *testing.T, nfsAddr, export, path string, data []byte) error {
	t.Helper()
	src := writeLocal(t, t.TempDir(), "src", data)
	_, err := libnfs("nfs-cp", src, snapURL(nfsAddr, export, path))
	return err
}

// snapMustPut is snapPut failing the test on error, recording the file in
// tree (if not nil).
func snapMustPut(t *testing.T, nfsAddr, export, path string, data []byte, tree snapTree) {
	t.Helper()
	if err := snapPut(t, nfsAddr, export, path, data); err != nil {
		t.Fatalf("nfs-cp to %s:%s: %v", export, path, err)
	}
	if tree != nil {
		tree[path] = data
	}
}

// snapGo is keel's Go NFS client with one export mounted.
type snapGo struct {
	t    *testing.T
	gc   *nfsclient.Client
	root []byte
}

// snapMount dials nfsAddr and mounts export.
func snapMount(t *testing.T, nfsAddr, export string) *snapGo {
	t.Helper()
	gc := goClient(t, nfsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root, mst, err := gc.Mount(ctx, "/"+export)
	if err != nil || mst != mount.MNT3_OK {
		t.Fatalf("MNT /%s at %s: status %d, %v", export, nfsAddr, mst, err)
	}
	return &snapGo{t: t, gc: gc, root: root}
}

func snapCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// lookup returns the handle of a slash-separated path.
func (g *snapGo) lookup(path string) []byte {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	h, st, err := g.gc.LookupPath(ctx, g.root, strings.Trim(path, "/"))
	if err != nil || st != nfsv3.NFS3_OK {
		g.t.Fatalf("LOOKUP %s: status %d, %v", path, st, err)
	}
	return h
}

func (g *snapGo) mkdir(dir []byte, name string) []byte {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	mode := uint32(0o755)
	r, st, err := g.gc.Mkdir(ctx, dir, name, nfsclient.Set{Mode: &mode})
	if err != nil || st != nfsv3.NFS3_OK {
		g.t.Fatalf("MKDIR %s: status %d, %v", name, st, err)
	}
	return nfsclient.Handle(r.Obj)
}

func (g *snapGo) remove(dir []byte, name string) {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	if _, st, err := g.gc.Remove(ctx, dir, name); err != nil || st != nfsv3.NFS3_OK {
		g.t.Fatalf("REMOVE %s: status %d, %v", name, st, err)
	}
}

func (g *snapGo) rename(fromDir []byte, from string, toDir []byte, to string) {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	if _, st, err := g.gc.Rename(ctx, fromDir, from, toDir, to); err != nil || st != nfsv3.NFS3_OK {
		g.t.Fatalf("RENAME %s → %s: status %d, %v", from, to, st, err)
	}
}

// truncate sets a file's size.
func (g *snapGo) truncate(h []byte, size uint64) {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	if _, st, err := g.gc.Setattr(ctx, h, nfsclient.Set{Size: &size}, nil); err != nil || st != nfsv3.NFS3_OK {
		g.t.Fatalf("SETATTR size %d: status %d, %v", size, st, err)
	}
}

// writeAt writes data at off in writes of 64 KiB.
func (g *snapGo) writeAt(h []byte, off uint64, data []byte) {
	g.t.Helper()
	ctx, cancel := snapCtx()
	defer cancel()
	for o := 0; o < len(data); o += 64 << 10 {
		end := min(o+64<<10, len(data))
		r, st, err := g.gc.Write(ctx, h, off+uint64(o), data[o:end])
		if err != nil || st != nfsv3.NFS3_OK || int(r.Count) != end-o {
			g.t.Fatalf("WRITE %d bytes at %d: status %d, %v", end-o, off+uint64(o), st, err)
		}
	}
}

// read reads a whole file by handle.
func (g *snapGo) read(h []byte) ([]byte, error) {
	ctx, cancel := snapCtx()
	defer cancel()
	return g.gc.ReadFile(ctx, h, 0, 64<<20)
}

// snapKeel runs a keel CLI command against the cluster and fails the test
// unless it exits 0; it returns the standard output.
func snapKeel(t *testing.T, c *Cluster, args ...string) string {
	t.Helper()
	r := c.keel(60*time.Second, args...)
	if r.Code != 0 {
		t.Fatalf("keel %s: exit %d: %s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// snapCreate runs `keel snapshot create VOL --name NAME` and checks what it
// prints.
func snapCreate(t *testing.T, c *Cluster, vol, name string) {
	t.Helper()
	out := snapKeel(t, c, "snapshot", "create", vol, "--name", name)
	if want := "/" + vol + "@" + name; !strings.Contains(out, want) {
		t.Fatalf("keel snapshot create %s --name %s printed %q; want it to name %s", vol, name, out, want)
	}
}

// snapList runs `keel snapshot list [VOL] --json`.
func snapList(t *testing.T, c *Cluster, vol string) []cluster.SnapshotInfo {
	t.Helper()
	args := []string{"snapshot", "list"}
	if vol != "" {
		args = append(args, vol)
	}
	out := snapKeel(t, c, append(args, "--json")...)
	var snaps []cluster.SnapshotInfo
	if err := json.Unmarshal([]byte(out), &snaps); err != nil {
		t.Fatalf("keel snapshot list --json: %v: %s", err, out)
	}
	return snaps
}

// snapGet returns snapshot vol@name from `keel snapshot list --json`.
func snapGet(t *testing.T, c *Cluster, vol, name string) cluster.SnapshotInfo {
	t.Helper()
	snaps := snapList(t, c, "")
	for _, s := range snaps {
		if s.Volume == vol && s.Name == name {
			return s
		}
	}
	t.Fatalf("keel snapshot list --json does not list %s@%s: %+v", vol, name, snaps)
	return cluster.SnapshotInfo{}
}

// snapVolume returns volume name from `keel volume list --json`.
func snapVolume(t *testing.T, c *Cluster, name string) cluster.VolumeInfo {
	t.Helper()
	out := snapKeel(t, c, "volume", "list", "--json")
	var vols []cluster.VolumeInfo
	if err := json.Unmarshal([]byte(out), &vols); err != nil {
		t.Fatalf("keel volume list --json: %v: %s", err, out)
	}
	for _, v := range vols {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("keel volume list --json does not list %s: %s", name, out)
	return cluster.VolumeInfo{}
}

// snapMoveLeader hands leadership to m with `keel failover --to` (unless it
// leads already) and waits until m leads and serves export over NFS.
func snapMoveLeader(t *testing.T, c *Cluster, m *Member, export string) {
	t.Helper()
	if st := c.Status(); st.Leader != m.ID {
		snapKeel(t, c, "failover", "--to", m.ID)
	}
	waitFor(t, 30*time.Second, m.ID+" to lead and serve /"+export+" over NFS", func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		if st.Leader != m.ID {
			return false, fmt.Sprintf("leader %q", st.Leader)
		}
		return snapNFSReady(m.NFSAddr, export)
	})
}

// snapNFSReady reports whether addr answers MNT /export and GETATTR of its
// root.
func snapNFSReady(addr, export string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gc, err := nfsclient.Dial(ctx, addr, nfsclient.Options{Machine: "keel-e2e-probe"})
	if err != nil {
		return false, err.Error()
	}
	defer gc.Close()
	root, mst, err := gc.Mount(ctx, "/"+export)
	if err != nil || mst != mount.MNT3_OK {
		return false, fmt.Sprintf("MNT /%s at %s: status %d, %v", export, addr, mst, err)
	}
	if _, st, err := gc.Getattr(ctx, root); err != nil || st != nfsv3.NFS3_OK {
		return false, fmt.Sprintf("GETATTR of /%s at %s: status %d, %v", export, addr, st, err)
	}
	return true, ""
}

// snapDirs returns the directories of volume snapshots called name in a
// member's live state (<data_dir>/volsnaps/<volume id>/<name>), relative
// to its directory; raft snapshots' copies are left out.
func snapDirs(t *testing.T, m *Member, name string) []string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(m.Dir, "data", "volsnaps", "*", name))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range found {
		found[i] = strings.TrimPrefix(f, m.Dir)
	}
	return found
}
