package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// snapSeed writes the files the snapshot tests start from into export
// through an NFS port, the leader's (nfs-cp; MKDIR with the Go client), and
// returns them: /a.txt (100 KiB, later overwritten in place), /b.bin
// (3 MiB, later partly overwritten), /c.txt (later removed), /empty (0 B,
// later appended to), /sub/d.txt (later renamed) and /sub/deep/e.txt.
func snapSeed(t *testing.T, nfsAddr, export, tag string) snapTree {
	t.Helper()
	g := snapMount(t, nfsAddr, export)
	sub := g.mkdir(g.root, "sub")
	g.mkdir(sub, "deep")
	tree := snapTree{"/sub/": nil, "/sub/deep/": nil}
	for _, f := range []struct {
		path string
		size int
	}{{"/a.txt", 100 << 10}, {"/b.bin", 3 << 20}, {"/c.txt", 1000}, {"/empty", 0}, {"/sub/d.txt", 70 << 10}, {"/sub/deep/e.txt", 12345}} {
		snapMustPut(t, nfsAddr, export, f.path, content(tag+f.path, f.size), tree)
	}
	return tree
}

// snapChange changes every file snapSeed wrote in export, through an NFS
// port, and returns the new tree: a.txt truncated and rewritten shorter,
// 4 KiB in the middle of b.bin rewritten, c.txt removed, empty appended
// to, sub/d.txt renamed to sub/d2.txt, a new file and a new directory.
func snapChange(t *testing.T, nfsAddr, export string, old snapTree, tag string) snapTree {
	t.Helper()
	tree := old.clone()
	g := snapMount(t, nfsAddr, export)

	a := g.lookup("a.txt")
	g.truncate(a, 0)
	tree["/a.txt"] = content(tag+"/a.txt", 50<<10)
	g.writeAt(a, 0, tree["/a.txt"])

	b := append([]byte(nil), old["/b.bin"]...)
	patch := content(tag+"/b.bin patch", 4096)
	copy(b[1<<20+100:], patch)
	g.writeAt(g.lookup("b.bin"), 1<<20+100, patch)
	tree["/b.bin"] = b

	g.remove(g.root, "c.txt")
	delete(tree, "/c.txt")

	tree["/empty"] = content(tag+"/empty", 777)
	g.writeAt(g.lookup("empty"), 0, tree["/empty"])

	sub := g.lookup("sub")
	g.rename(sub, "d.txt", sub, "d2.txt")
	tree["/sub/d2.txt"] = tree["/sub/d.txt"]
	delete(tree, "/sub/d.txt")

	g.mkdir(g.root, "newdir")
	tree["/newdir/"] = nil
	snapMustPut(t, nfsAddr, export, "/newdir/f.txt", content(tag+"/newdir/f.txt", 2000), tree)
	snapMustPut(t, nfsAddr, export, "/c.txt", content(tag+"/c.txt again", 300), tree)
	return tree
}

// TestSnapshotReadOnlyOverNFS writes files through the leader with nfs-cp,
// takes snapshot data@s1 with the CLI, then overwrites, truncates, removes,
// renames and creates files: over NFS /data@s1 shows exactly the old
// content and /data the new; nothing can be written into /data@s1 (nfs-cp
// and every changing NFS procedure get NFS3ERR_ROFS); `keel snapshot list
// --json` shows s1 with the old state's used bytes and inodes, holding
// almost no space of its own right after it was taken.
func TestSnapshotReadOnlyOverNFS(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	old := snapSeed(t, leader.NFSAddr, "data", "v1")
	volBefore := snapVolume(t, c, "data")
	if volBefore.UsedBytes != old.usedBytes() {
		t.Errorf("keel volume list: data uses %d bytes; the files written hold %d", volBefore.UsedBytes, old.usedBytes())
	}

	start := time.Now()
	snapCreate(t, c, "data", "s1")
	t.Logf("keel snapshot create took %v", time.Since(start).Round(time.Millisecond))
	s1 := snapGet(t, c, "data", "s1")
	t.Logf("s1 right after creation: %+v", s1)
	if s1.VolumeUsedBytes != volBefore.UsedBytes || s1.VolumeInodes != volBefore.Inodes {
		t.Errorf("s1: volume_used_bytes %d, volume_inodes %d; the volume had %d bytes, %d inodes when it was taken",
			s1.VolumeUsedBytes, s1.VolumeInodes, volBefore.UsedBytes, volBefore.Inodes)
	}
	if s1.HeldBytes >= 1<<20 {
		t.Errorf("s1 holds %d bytes right after creation; want less than 1 MiB (its files are shared with the live state)", s1.HeldBytes)
	}
	if s1.Missing || s1.Index == 0 || time.Since(s1.Created) > time.Minute || time.Until(s1.Created) > 5*time.Second {
		t.Errorf("s1: missing %v, raft_index %d, created %v (now %v)", s1.Missing, s1.Index, s1.Created, time.Now())
	}
	// The snapshot right away, and the volume unchanged by it.
	snapCheckTree(t, leader.NFSAddr, "data@s1", old, "just after the snapshot")
	snapCheckTree(t, leader.NFSAddr, "data", old, "just after the snapshot")

	now := snapChange(t, leader.NFSAddr, "data", old, "v2")
	snapCheckTree(t, leader.NFSAddr, "data", now, "after the changes")
	snapCheckTree(t, leader.NFSAddr, "data@s1", old, "after the changes")

	// nfs-cp into the snapshot: a new name and an existing one.
	for _, p := range []string{"/new.txt", "/a.txt", "/sub/new.txt"} {
		err := snapPut(t, leader.NFSAddr, "data@s1", p, []byte("must not land\n"))
		if err == nil || !strings.Contains(err.Error(), "NFS3ERR_ROFS") {
			t.Errorf("nfs-cp into data@s1:%s: %v; want a failure with NFS3ERR_ROFS", p, err)
		}
	}
	// Every changing procedure on snapshot handles.
	snapCheckROFS(t, leader.NFSAddr)

	snapCheckTree(t, leader.NFSAddr, "data@s1", old, "after the attempts to write into it")
	snapCheckTree(t, leader.NFSAddr, "data", now, "after the attempts to write into the snapshot")

	after := snapGet(t, c, "data", "s1")
	vol := snapVolume(t, c, "data")
	t.Logf("after the changes: s1 %+v; volume data used %d inodes %d", after, vol.UsedBytes, vol.Inodes)
	if after.VolumeUsedBytes != s1.VolumeUsedBytes || after.VolumeInodes != s1.VolumeInodes || after.Index != s1.Index || !after.Created.Equal(s1.Created) {
		t.Errorf("s1 changed with the volume: %+v, was %+v", after, s1)
	}
	if vol.UsedBytes != now.usedBytes() {
		t.Errorf("keel volume list: data uses %d bytes after the changes; its files hold %d", vol.UsedBytes, now.usedBytes())
	}
	// The MOUNT export list shows the snapshot.
	gc := goClient(t, leader.NFSAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exports, err := gc.Exports(ctx)
	if err != nil {
		t.Fatalf("MOUNT EXPORT: %v", err)
	}
	var dirs []string
	for _, e := range exports {
		dirs = append(dirs, e.Dir)
	}
	if !strings.Contains(" "+strings.Join(dirs, " ")+" ", " /data@s1 ") {
		t.Errorf("MOUNT EXPORT lists %v; want /data@s1 among them", dirs)
	}
}

// snapCheckROFS mounts /data@s1 with the Go client and tries every
// procedure that changes state on its handles: each must fail with
// NFS3ERR_ROFS. It also tries the two procedures that name a second
// directory (RENAME, LINK) with a live source and a snapshot destination:
// nothing may land in the live volume through a snapshot's handle.
func snapCheckROFS(t *testing.T, nfsAddr string) {
	t.Helper()
	s := snapMount(t, nfsAddr, "data@s1")
	live := snapMount(t, nfsAddr, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := s.lookup("a.txt")
	sub := s.lookup("sub")
	if bytes.Equal(a, live.lookup("a.txt")) {
		t.Errorf("a.txt has the same handle in the snapshot and in the volume")
	}
	// Observation (reported, not required): the attributes' fsid.
	if sa, st1, err1 := s.gc.Getattr(ctx, a); err1 == nil && st1 == nfsv3.NFS3_OK {
		if la, st2, err2 := live.gc.Getattr(ctx, live.lookup("a.txt")); err2 == nil && st2 == nfsv3.NFS3_OK {
			t.Logf("GETATTR a.txt: snapshot fsid %d fileid %d; live fsid %d fileid %d", sa.Fsid, sa.Fileid, la.Fsid, la.Fileid)
		}
	}
	mode := uint32(0o600)
	size := uint64(0)
	check := func(what string, st nfsv3.Nfsstat3, err error) {
		t.Helper()
		if err != nil || st != nfsv3.NFS3ERR_ROFS {
			t.Errorf("%s in data@s1: status %d, %v; want NFS3ERR_ROFS (%d)", what, st, err, nfsv3.NFS3ERR_ROFS)
		}
	}
	_, st, err := s.gc.Write(ctx, a, 0, []byte("x"))
	check("WRITE", st, err)
	_, st, err = s.gc.Setattr(ctx, a, nfsclient.Set{Size: &size}, nil)
	check("SETATTR size 0", st, err)
	_, st, err = s.gc.Setattr(ctx, a, nfsclient.Set{Mode: &mode}, nil)
	check("SETATTR mode", st, err)
	_, st, err = s.gc.Create(ctx, s.root, "new", nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
	check("CREATE UNCHECKED", st, err)
	_, st, err = s.gc.Create(ctx, s.root, "a.txt", nfsclient.Unchecked(nfsclient.Set{Size: &size}))
	check("CREATE UNCHECKED of an existing file with size 0", st, err)
	_, st, err = s.gc.Create(ctx, sub, "new", nfsclient.Exclusive([8]byte{1}))
	check("CREATE EXCLUSIVE", st, err)
	_, st, err = s.gc.Mkdir(ctx, s.root, "newdir", nfsclient.Set{Mode: &mode})
	check("MKDIR", st, err)
	_, st, err = s.gc.Symlink(ctx, s.root, "ln", "a.txt", nfsclient.Set{})
	check("SYMLINK", st, err)
	_, st, err = s.gc.Remove(ctx, s.root, "a.txt")
	check("REMOVE", st, err)
	_, st, err = s.gc.Rmdir(ctx, sub, "deep")
	check("RMDIR", st, err)
	_, st, err = s.gc.Rename(ctx, s.root, "a.txt", s.root, "a2.txt")
	check("RENAME", st, err)
	_, st, err = s.gc.Link(ctx, a, s.root, "a-link")
	check("LINK", st, err)

	// A live file renamed or linked into a snapshot directory.
	liveName := "cross.txt"
	m := uint32(0o644)
	if _, st, err := live.gc.Create(ctx, live.root, liveName, nfsclient.Guarded(nfsclient.Set{Mode: &m})); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("CREATE %s in data: status %d, %v", liveName, st, err)
	}
	cross := live.lookup(liveName)
	_, st, err = live.gc.Rename(ctx, live.root, liveName, sub, "moved.txt")
	if err != nil || (st != nfsv3.NFS3ERR_ROFS && st != nfsv3.NFS3ERR_XDEV) {
		t.Errorf("RENAME data:/%s to a directory handle of data@s1: status %d, %v; want NFS3ERR_ROFS or NFS3ERR_XDEV", liveName, st, err)
	}
	_, st, err = live.gc.Link(ctx, cross, sub, "linked.txt")
	if err != nil || (st != nfsv3.NFS3ERR_ROFS && st != nfsv3.NFS3ERR_XDEV) {
		t.Errorf("LINK data:/%s into a directory handle of data@s1: status %d, %v; want NFS3ERR_ROFS or NFS3ERR_XDEV", liveName, st, err)
	}
	// Neither may have changed the volume (the snapshot's directory has the
	// inode number of the volume's /sub).
	liveSub := live.lookup("sub")
	for _, name := range []string{"moved.txt", "linked.txt"} {
		if _, st, err := live.gc.Lookup(ctx, liveSub, name); err == nil && st == nfsv3.NFS3_OK {
			t.Errorf("data:/sub/%s exists: a RENAME or LINK to a handle of data@s1 changed the live volume", name)
		}
	}
	// Clean up what the test made in the live volume (wherever it is).
	for _, dir := range []struct {
		h    []byte
		name string
	}{{live.root, liveName}, {live.lookup("sub"), "moved.txt"}, {live.lookup("sub"), "linked.txt"}} {
		_, _, _ = live.gc.Remove(ctx, dir.h, dir.name)
	}
	// MNT of a snapshot that does not exist.
	if _, mst, err := s.gc.Mount(ctx, "/data@nosuch"); err != nil || mst != mount.MNT3ERR_NOENT {
		t.Errorf("MNT /data@nosuch: status %d, %v; want MNT3ERR_NOENT", mst, err)
	}
}
