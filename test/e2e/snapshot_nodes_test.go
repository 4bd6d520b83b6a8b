package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// TestSnapshotOnEveryNode takes snapshot data@s1, changes the volume, then
// hands leadership to each data node in turn (`keel failover --to`) and
// reads /data@s1 through that node's NFS port: every node shows exactly the
// same content, the old one, since the snapshot is taken at one raft index
// on every replica. File handles of the snapshot got from the first leader
// keep working on every other one, and `keel snapshot list` gives the same
// record whichever node answers.
func TestSnapshotOnEveryNode(t *testing.T) {
	c := iopCluster(t)
	first := iopLeader(t, c)
	old := snapSeed(t, first.NFSAddr, "data", "every-v1")
	snapCreate(t, c, "data", "s1")
	s1 := snapGet(t, c, "data", "s1")
	now := snapChange(t, first.NFSAddr, "data", old, "every-v2")

	// Handles of the snapshot from the first leader.
	g := snapMount(t, first.NFSAddr, "data@s1")
	handles := map[string][]byte{}
	for _, p := range []string{"/a.txt", "/b.bin", "/c.txt", "/sub/d.txt", "/sub/deep/e.txt"} {
		handles[p] = g.lookup(p)
	}
	root := g.root

	order := append([]*Member{first}, c.otherData(first)...)
	for _, m := range order {
		start := time.Now()
		snapMoveLeader(t, c, m, "data@s1")
		t.Logf("%s leads and serves /data@s1 %v after keel failover --to %s", m.ID, time.Since(start).Round(time.Millisecond), m.ID)
		snapCheckTree(t, m.NFSAddr, "data@s1", old, "on "+m.ID)
		snapCheckTree(t, m.NFSAddr, "data", now, "on "+m.ID)
		if got := snapGet(t, c, "data", "s1"); got.Index != s1.Index || got.VolumeUsedBytes != s1.VolumeUsedBytes ||
			got.VolumeInodes != s1.VolumeInodes || !got.Created.Equal(s1.Created) || got.Missing {
			t.Errorf("with %s leading, keel snapshot list shows %+v; with %s it showed %+v", m.ID, got, first.ID, s1)
		}

		// The first leader's snapshot handles, here.
		mg := snapMount(t, m.NFSAddr, "data@s1")
		if !bytes.Equal(mg.root, root) {
			t.Errorf("MNT /data@s1 at %s: root handle %x; %s gave %x", m.ID, mg.root, first.ID, root)
		}
		for p, h := range handles {
			got, err := mg.read(h)
			if err != nil || !bytes.Equal(got, old[p]) {
				t.Errorf("reading %s of data@s1 at %s by %s's handle: %d bytes sha256 %.12s, %v; want %d bytes sha256 %.12s",
					p, m.ID, first.ID, len(got), sum(got), err, len(old[p]), sum(old[p]))
			}
		}
		// Writes through the snapshot are refused on this node too.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, st, err := mg.gc.Write(ctx, handles["/a.txt"], 0, []byte("x"))
		cancel()
		if err != nil || st != nfsv3.NFS3ERR_ROFS {
			t.Errorf("WRITE to data@s1:/a.txt at %s: status %d, %v; want NFS3ERR_ROFS", m.ID, st, err)
		}
	}
	// Every replica holds the same state (the snapshot records included).
	waitConverged(t, c.DataMembers(), 30*time.Second)
	for _, m := range c.DataMembers() {
		st, err := m.Status()
		if err != nil {
			t.Fatalf("status of %s: %v", m.ID, err)
		}
		t.Logf("%s: applied index %d, raft snapshot index %d", m.ID, st.Raft.AppliedIndex, st.Raft.SnapshotIndex)
	}
}
