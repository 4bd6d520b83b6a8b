package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestUnstableWriteAcrossLeaderChange checks (with KEEL_NFS_UNSTABLE_WRITES=1)
// what makes answering UNSTABLE writes before they are committed safe, with real processes and keel's Go
// NFS client acting as a client that follows RFC 1813:
//
//  1. an UNSTABLE write is answered UNSTABLE, and COMMIT returns the same
//     verifier once it is committed: nothing to resend;
//  2. with both followers down (kill -9), a write is still answered
//     UNSTABLE (it is in the leader's pipeline) although no quorum can
//     commit it, and COMMIT does not confirm it; the leader is then killed
//     and the followers restarted: the new leader does not have the write,
//     and its COMMIT verifier differs from the write's, so the client knows
//     to resend;
//  3. resent and committed, the data reads back on the new leader.
func TestUnstableWriteAcrossLeaderChange(t *testing.T) {
	t.Setenv("KEEL_NFS_UNSTABLE_WRITES", "1") // inherited by the keel processes
	c := iopCluster(t)
	leader := iopLeader(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dial := func(addr string) *nfsclient.Client { return iopDial(t, ctx, addr, "keel-e2e-unstable") }
	gc := dial(leader.NFSAddr)
	root := iopMount(t, gc)
	mode := uint32(0o644)
	cr, st, err := gc.Create(ctx, root, "u.bin", nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("CREATE u.bin: status %d, %v", st, err)
	}
	f := nfsclient.Handle(cr.Obj)
	first := content("unstable:first", 1<<20)
	second := content("unstable:second", 1<<20)

	// 1. UNSTABLE, then COMMIT with the same verifier.
	w, st, err := gc.WriteHow(ctx, f, 0, first, nfsv3.UNSTABLE)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("WRITE UNSTABLE: status %d, %v", st, err)
	}
	if w.Committed != nfsv3.UNSTABLE || w.Count != uint32(len(first)) {
		t.Fatalf("WRITE UNSTABLE answered %d (count %d), want UNSTABLE (%d) for all %d bytes", w.Committed, w.Count, nfsv3.UNSTABLE, len(first))
	}
	cm, st, err := gc.Commit(ctx, f, 0, 0)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("COMMIT: status %d, %v", st, err)
	}
	if cm.Verf != w.Verf {
		t.Fatalf("COMMIT verifier %x differs from the WRITE's %x with no fail-over", cm.Verf, w.Verf)
	}

	// 2. No quorum: answered UNSTABLE all the same; then a new leader
	// without it.
	followers := c.otherData(leader)
	for _, m := range followers {
		m.Kill9()
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	w2, st, err := gc.WriteHow(wctx, f, uint64(len(first)), second, nfsv3.UNSTABLE)
	wcancel()
	if err != nil || st != nfsv3.NFS3_OK || w2.Committed != nfsv3.UNSTABLE {
		t.Fatalf("WRITE UNSTABLE with the followers stopped: status %d, %v (%+v); want an UNSTABLE answer from the pipeline", st, err, w2)
	}
	if w2.Verf != w.Verf {
		t.Fatalf("the verifier changed from %x to %x without a fail-over", w.Verf, w2.Verf)
	}
	// A COMMIT now must not confirm it: it cannot be committed.
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	cm, st, err = gc.Commit(cctx, f, 0, 0)
	ccancel()
	if err == nil && st == nfsv3.NFS3_OK && cm.Verf == w2.Verf {
		t.Fatalf("COMMIT on the leader without a quorum returned the write's verifier %x: the write would count as durable", cm.Verf)
	}
	t.Logf("COMMIT without a quorum: status %d, %v", st, err)
	leader.Kill9()
	for _, m := range followers {
		m.Start()
	}
	old := leader
	leader = c.WaitLeader(60*time.Second, old.ID)
	nc := dial(leader.NFSAddr)
	var attr nfsv3.Fattr3
	waitFor(t, 60*time.Second, "GETATTR u.bin at the new leader", func() (bool, string) {
		a, st, err := nc.Getattr(ctx, f)
		if errors.Is(err, nfsclient.ErrClosed) {
			nc = dial(leader.NFSAddr)
		}
		if err == nil && st == nfsv3.NFS3_OK {
			attr = *a
		}
		return err == nil && st == nfsv3.NFS3_OK, fmt.Sprintf("status %d, %v", st, err)
	})
	if attr.Size != uint64(len(first)) {
		t.Fatalf("u.bin is %d bytes at the new leader, want %d: the second write was never sent to the nodes that elected it", attr.Size, len(first))
	}
	cm, st, err = nc.Commit(ctx, f, 0, 0)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("COMMIT at the new leader: status %d, %v", st, err)
	}
	if cm.Verf == w2.Verf {
		t.Fatalf("COMMIT at the new leader returned the lost write's verifier %x: the client would not resend it", cm.Verf)
	}

	// 3. The client resends what it wrote since the last good COMMIT.
	w3, st, err := nc.WriteHow(ctx, f, uint64(len(first)), second, nfsv3.UNSTABLE)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("resent WRITE: status %d, %v", st, err)
	}
	cm, st, err = nc.Commit(ctx, f, 0, 0)
	if err != nil || st != nfsv3.NFS3_OK || cm.Verf != w3.Verf {
		t.Fatalf("COMMIT of the resent write: status %d, %v, verifier %x vs the write's %x", st, err, cm.Verf, w3.Verf)
	}
	got, err := nc.ReadFile(ctx, f, 0, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte(nil), first...), second...)) {
		t.Fatalf("u.bin reads back %d bytes, not the %d written", len(got), len(first)+len(second))
	}
}
