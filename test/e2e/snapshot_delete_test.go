package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// TestSnapshotDeleteOverNFS deletes snapshot data@s1 with `keel snapshot
// delete` after an NFS client used handles into it: MNT /data@s1 and nfs-ls
// fail, the listing no longer shows it. A new snapshot made under the same
// name is another snapshot (taken at another raft index): the deleted one's
// handles are stale on every node, the one that served them included, and
// never show the new snapshot's content, while a new mount shows it. The
// new snapshot's handles are stale as soon as it is deleted in turn, and
// deleting the volume deletes its snapshots' directories on every node.
// The CLI refuses malformed, missing and duplicate snapshot names.
func TestSnapshotDeleteOverNFS(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	nfs := leader.NFSAddr
	old := snapSeed(t, nfs, "data", "delete-v1")
	snapCreate(t, c, "data", "s1")
	first := snapGet(t, c, "data", "s1")

	// Handles into s1, used once (the server may remember them).
	g := snapMount(t, nfs, "data@s1")
	handles := map[string][]byte{"/": g.root}
	for _, p := range []string{"/a.txt", "/sub/deep/e.txt", "/sub"} {
		handles[p] = g.lookup(p)
	}
	if got, err := g.read(handles["/a.txt"]); err != nil || !bytes.Equal(got, old["/a.txt"]) {
		t.Fatalf("reading data@s1:/a.txt: %d bytes, %v", len(got), err)
	}
	now := snapChange(t, nfs, "data", old, "delete-v2")

	// Errors of the CLI.
	for _, args := range [][]string{
		{"snapshot", "delete", "data"},                  // no @
		{"snapshot", "delete", "data@nosuch"},           // no such snapshot
		{"snapshot", "create", "nosuch", "--name", "x"}, // no such volume
		{"snapshot", "create", "data", "--name", "s1"},  // exists
		{"snapshot", "create", "data", "--name", "a/b"}, // bad name
	} {
		if r := c.keel(30*time.Second, args...); r.Code == 0 {
			t.Errorf("keel %s succeeded: %s", strings.Join(args, " "), r.Stdout)
		}
	}

	out := snapKeel(t, c, "snapshot", "delete", "data@s1")
	t.Logf("keel snapshot delete: %s", strings.TrimSpace(out))
	if snaps := snapList(t, c, "data"); len(snaps) != 0 {
		t.Errorf("keel snapshot list data after the delete: %+v; want none", snaps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkStale := func(when string, m *Member) {
		t.Helper()
		mg := snapMount(t, m.NFSAddr, "data")
		for p, h := range handles {
			if _, st, err := mg.gc.Getattr(ctx, h); err != nil || st != nfsv3.NFS3ERR_STALE {
				t.Errorf("%s, on %s: GETATTR of data@s1:%s by the deleted snapshot's handle: status %d, %v; want NFS3ERR_STALE", when, m.ID, p, st, err)
			}
			if r, st, err := mg.gc.Read(ctx, h, 0, 1<<20); err == nil && st == nfsv3.NFS3_OK {
				t.Errorf("%s, on %s: READ of data@s1:%s by the deleted snapshot's handle gave %d bytes (sha256 %.12s): it must be stale", when, m.ID, p, len(r.Data), sum(r.Data))
			}
		}
	}
	// MNT and nfs-ls of the deleted snapshot fail; its handles are not
	// used until a new s1 exists (a server that remembered which snapshot
	// a handle named could take the new one for it).
	if _, mst, err := g.gc.Mount(ctx, "/data@s1"); err != nil || mst != mount.MNT3ERR_NOENT {
		t.Errorf("MNT /data@s1 after the delete: status %d, %v; want MNT3ERR_NOENT", mst, err)
	}
	if _, err := snapLs(nfs, "data@s1", "/"); err == nil {
		t.Errorf("nfs-ls of /data@s1 worked after the delete")
	}
	snapCheckTree(t, nfs, "data", now, "data after deleting its snapshot")

	// A new s1: the state of now.
	snapCreate(t, c, "data", "s1")
	second := snapGet(t, c, "data", "s1")
	if second.Index == first.Index {
		t.Fatalf("the new s1 has the raft index of the deleted one (%d)", first.Index)
	}
	snapCheckTree(t, nfs, "data@s1", now, "the new s1")
	ng := snapMount(t, nfs, "data@s1")
	if bytes.Equal(ng.root, handles["/"]) {
		t.Errorf("the new s1's root handle is the deleted one's")
	}
	checkStale("after a new s1 was made", leader)
	for _, m := range c.otherData(leader) {
		snapMoveLeader(t, c, m, "data@s1")
		checkStale("after a new s1 was made", m)
		snapCheckTree(t, m.NFSAddr, "data@s1", now, "the new s1 on "+m.ID)
	}
	snapMoveLeader(t, c, leader, "data@s1")
	checkStale("after a new s1 was made and leadership came back", leader)

	// Handles of the new s1, stale right after it is deleted in turn.
	ng = snapMount(t, nfs, "data@s1") // the old connection ended with the leadership
	handles = map[string][]byte{"/": ng.root, "/a.txt": ng.lookup("a.txt"), "/sub/d2.txt": ng.lookup("sub/d2.txt")}
	if got, err := ng.read(handles["/a.txt"]); err != nil || !bytes.Equal(got, now["/a.txt"]) {
		t.Errorf("reading the new data@s1:/a.txt: %d bytes, %v", len(got), err)
	}
	snapKeel(t, c, "snapshot", "delete", "data@s1")
	checkStale("after the new s1 was deleted", leader)

	// Deleting the volume deletes its snapshots.
	snapKeel(t, c, "volume", "delete", "data", "--force")
	if snaps := snapList(t, c, ""); len(snaps) != 0 {
		t.Errorf("keel snapshot list after deleting the volume: %+v; want none", snaps)
	}
	waitConverged(t, c.DataMembers(), 30*time.Second)
	for _, m := range c.DataMembers() {
		if found := snapDirs(t, m, "s1"); len(found) != 0 {
			t.Errorf("%s still holds snapshot directories %v after the volume was deleted", m.ID, found)
		}
	}
}
