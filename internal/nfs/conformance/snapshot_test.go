package conformance

import (
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// TestSnapshotAttributes: a snapshot's files carry another fsid than the
// live volume's (same fileids: clients must not take one for the other),
// FSSTAT of a snapshot reports its own use, and writes are refused.
func TestSnapshotAttributes(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	live := s.fileAs(root, "a", 0, 0, 0o644, []byte("before"))
	if _, err := s.fs.CreateSnapshot(cx, "data", "s1"); err != nil {
		t.Fatal(err)
	}
	s.fileAs(root, "b", 0, 0, 0o644, make([]byte, 100000))

	sroot, st, err := c.Mount(cx, "/data@s1")
	if err != nil || st != mount.MNT3_OK {
		t.Fatalf("MNT /data@s1: %v %v", st, err)
	}
	la, lst, err := c.Getattr(cx, live)
	if err != nil || lst != nfsv3.NFS3_OK {
		t.Fatalf("GETATTR live: %v %v", lst, err)
	}
	lk, lkst, err := c.Lookup(cx, sroot, "a")
	if err != nil || lkst != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP a in the snapshot: %v %v", lkst, err)
	}
	sa, shandle := lk.ObjAttributes.(*nfsv3.PostOpAttr_TRUE).Attributes, lk.Object.Data
	if sa.Fileid != la.Fileid || sa.Fsid == la.Fsid {
		t.Fatalf("snapshot file: fsid %d fileid %d; live: fsid %d fileid %d (want same fileid, other fsid)", sa.Fsid, sa.Fileid, la.Fsid, la.Fileid)
	}
	fs, fst, err := c.Fsstat(cx, sroot)
	if err != nil || fst != nfsv3.NFS3_OK {
		t.Fatalf("FSSTAT snapshot: %v %v", fst, err)
	}
	lfs, _, _ := c.Fsstat(cx, root)
	if fs.Tbytes-fs.Fbytes >= lfs.Tbytes-lfs.Fbytes || fs.Fbytes != 0 {
		t.Fatalf("FSSTAT snapshot used %d free %d; live used %d: the snapshot must report its own, smaller use and no free space",
			fs.Tbytes-fs.Fbytes, fs.Fbytes, lfs.Tbytes-lfs.Fbytes)
	}
	if _, wst, _ := c.Write(cx, shandle, 0, []byte("x")); wst != nfsv3.NFS3ERR_ROFS {
		t.Fatalf("WRITE into a snapshot: %v, want ROFS", wst)
	}
}
