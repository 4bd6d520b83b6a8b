package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// TestCloneAndRevert clones data@s1 to data2 with `keel volume clone`:
// data2 holds the snapshot's content and is independent (writing to it
// changes neither data nor the snapshot). `keel volume revert data s1` is
// refused right after data was written to through the leader (the error
// says so: EBUSY), and with --force puts s1's content back exactly: the
// files, and the used bytes and inodes that `keel volume list --json`
// shows, equal the snapshot's. Handles of files that existed in s1 work
// again; those of files made after it are stale, and stay so.
func TestCloneAndRevert(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	nfs := leader.NFSAddr
	old := snapSeed(t, nfs, "data", "clone-v1")
	snapCreate(t, c, "data", "s1")
	s1 := snapGet(t, c, "data", "s1")
	now := snapChange(t, nfs, "data", old, "clone-v2")

	// Handles in the live volume, from before the revert.
	live := snapMount(t, nfs, "data")
	kept := map[string][]byte{} // files of s1: their handles must work after the revert
	for _, p := range []string{"/a.txt", "/b.bin", "/empty", "/sub/deep/e.txt"} {
		kept[p] = live.lookup(p)
	}
	made := map[string][]byte{} // files made after s1: stale after the revert
	for _, p := range []string{"/newdir/f.txt", "/c.txt", "/newdir"} {
		made[p] = live.lookup(p)
	}

	// The clone, with the source's size.
	out := snapKeel(t, c, "volume", "clone", "data@s1", "data2")
	t.Logf("keel volume clone: %s", strings.TrimSpace(out))
	data2 := snapVolume(t, c, "data2")
	dataVol := snapVolume(t, c, "data")
	if data2.UsedBytes != s1.VolumeUsedBytes || data2.Inodes != s1.VolumeInodes || data2.SizeBytes != dataVol.SizeBytes || data2.ID == dataVol.ID {
		t.Errorf("data2 after the clone: %+v; want used %d bytes and %d inodes (s1's), size %d (data's), an id of its own",
			data2, s1.VolumeUsedBytes, s1.VolumeInodes, dataVol.SizeBytes)
	}
	// A clone gets the default export (root squashed): export it as data is.
	snapKeel(t, c, "volume", "export", "data2", "--no-root-squash", "--clients", "127.0.0.0/8")
	snapCheckTree(t, nfs, "data2", old, "the clone")

	// What the clone command refuses, and --size.
	for _, args := range [][]string{
		{"volume", "clone", "data@s1", "data2"},                   // exists
		{"volume", "clone", "data@nosuch", "data3"},               // no such snapshot
		{"volume", "clone", "data@s1", "data3", "--size", "1MiB"}, // below the snapshot's data
	} {
		if r := c.keel(30*time.Second, args...); r.Code == 0 {
			t.Errorf("keel %s succeeded: %s", strings.Join(args, " "), r.Stdout)
		}
	}
	snapKeel(t, c, "volume", "clone", "data@s1", "data3", "--size", "2GiB")
	if v := snapVolume(t, c, "data3"); v.SizeBytes != 2<<30 || v.UsedBytes != s1.VolumeUsedBytes {
		t.Errorf("data3 (clone --size 2GiB): %+v; want size %d, used %d", v, 2<<30, s1.VolumeUsedBytes)
	}

	// data2 is independent: change it every way, then look at all three.
	clone := snapChange(t, nfs, "data2", old, "clone-of-s1")
	snapCheckTree(t, nfs, "data2", clone, "the clone after writing to it")
	snapCheckTree(t, nfs, "data", now, "data after writing to its clone")
	snapCheckTree(t, nfs, "data@s1", old, "s1 after writing to its clone")

	// Revert right after a write to data: refused.
	snapMustPut(t, nfs, "data", "/late.txt", content("clone late", 5000), now)
	r := c.keel(30*time.Second, "volume", "revert", "data", "s1")
	t.Logf("keel volume revert data s1 right after a write: exit %d: %s%s", r.Code, r.Stdout, strings.TrimSpace(r.Stderr))
	if r.Code == 0 {
		t.Fatalf("keel volume revert data s1 succeeded right after a write to data: %s", r.Stdout)
	}
	if msg := strings.ToLower(r.Stderr); !strings.Contains(msg, "written") || !(strings.Contains(msg, "ebusy") || strings.Contains(msg, "busy")) {
		t.Errorf("keel volume revert refused with %q; want it to say that the volume was written to (EBUSY)", r.Stderr)
	}
	snapCheckTree(t, nfs, "data", now, "data after the refused revert")

	// --force.
	out = snapKeel(t, c, "volume", "revert", "data", "s1", "--force")
	t.Logf("keel volume revert --force: %s", strings.TrimSpace(out))
	snapCheckTree(t, nfs, "data", old, "data reverted to s1")
	if v := snapVolume(t, c, "data"); v.UsedBytes != s1.VolumeUsedBytes || v.Inodes != s1.VolumeInodes || v.ID != dataVol.ID ||
		v.SizeBytes != dataVol.SizeBytes || !v.Created.Equal(dataVol.Created) || v.Export.Squash != dataVol.Export.Squash {
		t.Errorf("keel volume list after the revert: data %+v; want used %d bytes and %d inodes (s1's), id, size, creation and export unchanged (%+v)",
			v, s1.VolumeUsedBytes, s1.VolumeInodes, dataVol)
	}
	if got := snapGet(t, c, "data", "s1"); got.Index != s1.Index || got.VolumeUsedBytes != s1.VolumeUsedBytes || got.Missing {
		t.Errorf("s1 after the revert: %+v; was %+v", got, s1)
	}
	snapCheckTree(t, nfs, "data@s1", old, "s1 after the revert")
	snapCheckTree(t, nfs, "data2", clone, "the clone after the revert of data")

	// Handles from before the revert.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkHandles := func(when string) {
		t.Helper()
		for p, h := range kept {
			got, err := live.read(h)
			if err != nil || !bytes.Equal(got, old[p]) {
				t.Errorf("%s: reading data:%s by its handle from before the revert: %d bytes sha256 %.12s, %v; want s1's %d bytes sha256 %.12s",
					when, p, len(got), sum(got), err, len(old[p]), sum(old[p]))
			}
		}
		for p, h := range made {
			if _, st, err := live.gc.Getattr(ctx, h); err != nil || st != nfsv3.NFS3ERR_STALE {
				t.Errorf("%s: GETATTR of data:%s (made after s1) by its handle from before the revert: status %d, %v; want NFS3ERR_STALE", when, p, st, err)
			}
		}
	}
	checkHandles("after the revert")

	// The volume works on: new files and directories, which never take the
	// numbers of the files the revert dropped.
	after := old.clone()
	g := snapMount(t, nfs, "data")
	g.mkdir(g.root, "newdir")
	after["/newdir/"] = nil
	for _, p := range []string{"/newdir/f.txt", "/post.txt", "/sub/post.txt"} {
		snapMustPut(t, nfs, "data", p, content("clone post"+p, 3000), after)
	}
	checkHandles("after new files were made")
	snapCheckTree(t, nfs, "data", after, "data after writing to it after the revert")
	snapCheckTree(t, nfs, "data@s1", old, "s1 at the end")
	if v := snapVolume(t, c, "data"); v.UsedBytes != after.usedBytes() {
		t.Errorf("data uses %d bytes at the end; its files hold %d", v.UsedBytes, after.usedBytes())
	}
	waitConverged(t, c.DataMembers(), 30*time.Second)
}
