package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// Fixed xids of the retransmitted calls: what a client resends after it
// lost its connection (here: because the leader died) carries the xid of
// the original call.
const (
	xidCreateOnce = 0x6b65656c // "keel"
	xidRemoveGone = 0x6b65656d
)

// retransmitMachine is the AUTH_SYS machine name of the client that
// retransmits: with its address (127.0.0.1) it names the client in the
// replicated duplicate request cache.
const retransmitMachine = "keel-e2e-retransmit"

// TestInteropFailoverHandlesAndRetransmits kills the leader (kill -9) after
// a client got a file handle from it and after it answered a CREATE GUARDED
// and a REMOVE. On the new leader, the old handle reads the same file, and
// the identical calls (same xid, arguments, machine name and address) sent
// again get their original replies: CREATE NFS3_OK with the same handle
// (not EXIST), REMOVE NFS3_OK (not NOENT), and the file exists once.
func TestInteropFailoverHandlesAndRetransmits(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(addr string) *nfsclient.Client { return iopDial(t, ctx, addr, retransmitMachine) }
	gc := dial(leader.NFSAddr)
	root := iopMount(t, gc)

	// A file copied in with nfs-cp; its handle from the leader.
	data := content("interop-failover:kept.bin", 3<<20+17)
	if _, err := libnfs("nfs-cp", writeLocal(t, t.TempDir(), "kept.bin", data), libnfsURL(t, leader.NFSAddr, "data", "kept.bin")); err != nil {
		t.Fatalf("nfs-cp kept.bin in: %v", err)
	}
	lk, st, err := gc.Lookup(ctx, root, "kept.bin")
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP kept.bin: status %d, %v", st, err)
	}
	keptFH := lk.Object.Data

	// "gone" exists, to be removed with a fixed xid.
	mode := uint32(0o644)
	if _, st, err := gc.Create(ctx, root, "gone", nfsclient.Guarded(nfsclient.Set{Mode: &mode})); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("CREATE gone: status %d, %v", st, err)
	}

	// The calls the client will retransmit.
	how := nfsclient.Guarded(nfsclient.Set{Mode: &mode})
	createOnce := func(cl *nfsclient.Client) (*nfsv3.Create3resok, nfsv3.Nfsstat3, error) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		return cl.CreateXID(cctx, xidCreateOnce, root, "once", how)
	}
	removeGone := func(cl *nfsclient.Client) (nfsv3.Nfsstat3, error) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		var res nfsv3.Remove3res
		err := cl.CallXID(cctx, xidRemoveGone, nfsclient.NFSProgram, nfsclient.NFSVersion, nfsclient.ProcRemove,
			&nfsv3.Remove3args{Object: nfsv3.Diropargs3{Dir: nfsv3.NfsFh3{Data: root}, Name: "gone"}},
			nfsclient.Into(&res, nfsv3.ReadRemove3res))
		if err != nil {
			return nfsv3.NFS3ERR_SERVERFAULT, err
		}
		return res.GetStatus(), nil
	}

	cr, st, err := createOnce(gc)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("CREATE GUARDED once (xid %#x) at the leader %s: status %d, %v", xidCreateOnce, leader.ID, st, err)
	}
	onceFH := nfsclient.Handle(cr.Obj)
	if onceFH == nil {
		t.Fatalf("CREATE once returned no handle")
	}
	if st, err := removeGone(gc); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("REMOVE gone (xid %#x) at the leader %s: status %d, %v", xidRemoveGone, leader.ID, st, err)
	}

	// kill -9 the leader; the client sends the same calls to the new one.
	old := leader
	old.Kill9()
	killed := time.Now()
	leader = c.WaitLeader(60*time.Second, old.ID)
	t.Logf("%s is the new leader %v after the kill of %s", leader.ID, time.Since(killed).Round(time.Millisecond), old.ID)
	nc := dial(leader.NFSAddr)

	// Resend until the new leader gives a definite answer (JUKEBOX and a
	// dropped connection mean "not yet"), always with the same xid.
	var rcr *nfsv3.Create3resok
	waitFor(t, 60*time.Second, "an answer to the retransmitted CREATE at the new leader", func() (bool, string) {
		rcr, st, err = createOnce(nc)
		if errors.Is(err, nfsclient.ErrClosed) {
			nc = dial(leader.NFSAddr)
		}
		return err == nil && st != nfsv3.NFS3ERR_JUKEBOX, fmt.Sprintf("status %d, %v", st, err)
	})
	if st != nfsv3.NFS3_OK {
		t.Fatalf("retransmitted CREATE GUARDED once (xid %#x) at the new leader %s: status %d, want NFS3_OK as the old leader answered (%d is EXIST: the create ran twice)",
			xidCreateOnce, leader.ID, st, nfsv3.NFS3ERR_EXIST)
	}
	if h := nfsclient.Handle(rcr.Obj); !bytes.Equal(h, onceFH) {
		t.Fatalf("retransmitted CREATE once: handle %x, the original reply had %x", h, onceFH)
	}
	var rst nfsv3.Nfsstat3
	waitFor(t, 30*time.Second, "an answer to the retransmitted REMOVE at the new leader", func() (bool, string) {
		rst, err = removeGone(nc)
		if errors.Is(err, nfsclient.ErrClosed) {
			nc = dial(leader.NFSAddr)
		}
		return err == nil && rst != nfsv3.NFS3ERR_JUKEBOX, fmt.Sprintf("status %d, %v", rst, err)
	})
	if rst != nfsv3.NFS3_OK {
		t.Fatalf("retransmitted REMOVE gone (xid %#x) at the new leader %s: status %d, want NFS3_OK as the old leader answered (%d is NOENT: the remove ran twice)",
			xidRemoveGone, leader.ID, rst, nfsv3.NFS3ERR_NOENT)
	}

	// The handle from the old leader: GETATTR and READ at the new one.
	a, st, err := nc.Getattr(ctx, keptFH)
	if err != nil || st != nfsv3.NFS3_OK || a.Size != uint64(len(data)) {
		t.Fatalf("GETATTR of the old leader's handle of kept.bin at %s: status %d, %v, attributes %+v", leader.ID, st, err, a)
	}
	if got, err := nc.ReadFile(ctx, keptFH, 1<<20, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("READ of the old leader's handle at %s: %d bytes (sha256 %s), %v; want sha256 %s", leader.ID, len(got), sum(got), err, sum(data))
	}
	if a, st, err := nc.Getattr(ctx, onceFH); err != nil || st != nfsv3.NFS3_OK || a.Type != nfsv3.NF3REG {
		t.Fatalf("GETATTR of once (handle from the old leader) at %s: status %d, %v", leader.ID, st, err)
	}

	// "once" exists once and "gone" not at all, by READDIR and by nfs-ls.
	names := iopReaddirNames(t, nc, root)
	count := map[string]int{}
	for _, n := range names {
		count[n]++
	}
	if count["once"] != 1 || count["gone"] != 0 || count["kept.bin"] != 1 {
		t.Fatalf("READDIRPLUS of the root at the new leader: %v; want once and kept.bin once each, no gone", names)
	}
	ls := iopLs(t, libnfsURL(t, leader.NFSAddr, "data", ""))
	lsNames := iopNames(ls)
	if strings.Count(" "+strings.Join(lsNames, " ")+" ", " once ") != 1 {
		t.Fatalf("nfs-ls of the root at the new leader: %v; want once listed once", lsNames)
	}
	if _, ok := iopLsFind(ls, "gone"); ok {
		t.Fatalf("nfs-ls of the root at the new leader lists gone, which was removed: %v", lsNames)
	}
	if lk, st, err := nc.Lookup(ctx, root, "once"); err != nil || st != nfsv3.NFS3_OK || !bytes.Equal(lk.Object.Data, onceFH) {
		t.Fatalf("LOOKUP once at the new leader: status %d, %v; want the handle %x", st, err, onceFH)
	}

	// Controls: the same calls with new xids are new requests, and get the
	// answers a second create and a second remove deserve.
	if _, st, err := nc.Create(ctx, root, "once", how); err != nil || st != nfsv3.NFS3ERR_EXIST {
		t.Fatalf("CREATE GUARDED once with a new xid: status %d, %v; want EXIST", st, err)
	}
	if _, st, err := nc.Remove(ctx, root, "gone"); err != nil || st != nfsv3.NFS3ERR_NOENT {
		t.Fatalf("REMOVE gone with a new xid: status %d, %v; want NOENT", st, err)
	}
}
