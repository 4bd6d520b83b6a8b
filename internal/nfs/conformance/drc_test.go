package conformance

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestExclusiveCreate: an EXCLUSIVE create retransmitted (as a new call)
// with the same verifier succeeds on the file it made; another verifier, or
// a GUARDED create, finds the name taken.
func TestExclusiveCreate(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	verf := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	r1, st, err := c.Create(cx, root, "x", nfsclient.Exclusive(verf))
	must(t, "CREATE EXCLUSIVE x", st, err)
	h := nfsclient.Handle(r1.Obj)
	if h == nil {
		t.Fatal("CREATE EXCLUSIVE returned no handle")
	}
	r2, st, err := c.Create(cx, root, "x", nfsclient.Exclusive(verf))
	must(t, "CREATE EXCLUSIVE x again, same verifier", st, err)
	if !bytes.Equal(nfsclient.Handle(r2.Obj), h) {
		t.Fatalf("the repeated EXCLUSIVE create returned handle %x, the first %x", nfsclient.Handle(r2.Obj), h)
	}
	_, st, err = c.Create(cx, root, "x", nfsclient.Exclusive([8]byte{8, 7, 6, 5, 4, 3, 2, 1}))
	wantStatus(t, "CREATE EXCLUSIVE x, another verifier", st, err, nfsv3.NFS3ERR_EXIST)
	_, st, err = c.Create(cx, root, "x", nfsclient.Guarded(nfsclient.Set{}))
	wantStatus(t, "CREATE GUARDED x", st, err, nfsv3.NFS3ERR_EXIST)
	// What a client does next: set the mode it wanted.
	_, st, err = c.Setattr(cx, h, nfsclient.Set{Mode: new(uint32(0o640))}, nil)
	must(t, "SETATTR after the exclusive create", st, err)
	if n := s.volume("data").Inodes; n != 2 {
		t.Fatalf("the volume has %d inodes, want 2 (root and x)", n)
	}
}

// TestDuplicateRequestCache sends non-idempotent calls twice with the same
// xid, as a client retransmits after losing a reply: both replies are
// byte-for-byte identical and successful, and the change happens once (the
// same call with a fresh xid then fails as a real second attempt would).
func TestDuplicateRequestCache(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	file := s.fileAs(root, "file", 0, 0, 0o644, []byte("data"))
	s.fileAs(root, "dup-remove", 0, 0, 0o644, []byte("data"))
	s.fileAs(root, "dup-from", 0, 0, 0o644, []byte("data"))
	s.mkdirIn(c, root, "dup-rmdir")
	dirop := func(name string) nfsv3.Diropargs3 { return nfsv3.Diropargs3{Dir: nfsv3.NfsFh3{Data: root}, Name: name} }
	sattr := nfsclient.Set{Mode: new(uint32(0o600))}.Sattr3()

	cases := []struct {
		name   string
		proc   uint32
		args   io.WriterTo
		inodes int            // change in the volume's inode count
		again  nfsv3.Nfsstat3 // the status of the same call with a new xid
	}{
		{"CREATE GUARDED", nfsclient.ProcCreate, &nfsv3.Create3args{Where: dirop("dup-create"),
			How: &nfsv3.Createhow3_GUARDED{ObjAttributes: sattr}}, 1, nfsv3.NFS3ERR_EXIST},
		{"REMOVE", nfsclient.ProcRemove, &nfsv3.Remove3args{Object: dirop("dup-remove")}, -1, nfsv3.NFS3ERR_NOENT},
		{"RENAME", nfsclient.ProcRename, &nfsv3.Rename3args{From: dirop("dup-from"), To: dirop("dup-to")}, 0, nfsv3.NFS3ERR_NOENT},
		{"MKDIR", nfsclient.ProcMkdir, &nfsv3.Mkdir3args{Where: dirop("dup-mkdir"), Attributes: sattr}, 1, nfsv3.NFS3ERR_EXIST},
		{"RMDIR", nfsclient.ProcRmdir, &nfsv3.Rmdir3args{Object: dirop("dup-rmdir")}, -1, nfsv3.NFS3ERR_NOENT},
		{"SYMLINK", nfsclient.ProcSymlink, &nfsv3.Symlink3args{Where: dirop("dup-symlink"),
			Symlink: nfsv3.Symlinkdata3{SymlinkAttributes: nfsclient.Set{}.Sattr3(), SymlinkData: "file"}}, 1, nfsv3.NFS3ERR_EXIST},
		{"LINK", nfsclient.ProcLink, &nfsv3.Link3args{File: nfsv3.NfsFh3{Data: file}, Link: dirop("dup-link")}, 0, nfsv3.NFS3ERR_EXIST},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xid := uint32(0x7a000000 + i)
			raw, err := c.EncodeCall(xid, nfsclient.NFSProgram, 3, tc.proc, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			before := s.volume("data").Inodes
			first, err := c.SendRaw(cx, xid, raw)
			if err != nil {
				t.Fatal(err)
			}
			second, err := c.SendRaw(cx, xid, raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Fatalf("the retransmission got another reply:\nfirst  % x\nsecond % x", first, second)
			}
			// A retransmission on a new connection (a client reconnecting)
			// is the same request too.
			c2 := s.dial(nfsclient.Options{Machine: "conformance"})
			third, err := c2.SendRaw(cx, xid, raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, third) {
				t.Fatalf("the retransmission on a new connection got another reply:\nfirst % x\nthird % x", first, third)
			}
			if st := replyStatus(t, first); st != nfsv3.NFS3_OK {
				t.Fatalf("status %s", statusName(st))
			}
			if got := int(s.volume("data").Inodes) - int(before); got != tc.inodes {
				t.Fatalf("inode count changed by %d, want %d", got, tc.inodes)
			}
			var res nfsResult
			if err := c.Call(cx, nfsclient.NFSProgram, 3, tc.proc, tc.args, readStatus(&res)); err != nil {
				t.Fatal(err)
			}
			if res.st != tc.again {
				t.Fatalf("the same call with a new xid: %s, want %s", statusName(res.st), statusName(tc.again))
			}
		})
	}

	t.Run("CREATE with attributes", func(t *testing.T) {
		// The SETATTR that completes such a CREATE is recorded too: the
		// retransmission gets the same reply, attributes set.
		const xid = 0x7b000003
		mtime := time.Unix(1_400_000_000, 5)
		how := nfsclient.Guarded(nfsclient.Set{UID: new(uint32(4242)), Mtime: &mtime})
		raw, err := c.EncodeCall(xid, nfsclient.NFSProgram, 3, nfsclient.ProcCreate,
			&nfsv3.Create3args{Where: dirop("dup-attrs"), How: how})
		if err != nil {
			t.Fatal(err)
		}
		first, err := c.SendRaw(cx, xid, raw)
		if err != nil {
			t.Fatal(err)
		}
		second, err := c.SendRaw(cx, xid, raw)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("the retransmission got another reply (%v):\nfirst  % x\nsecond % x", err, first, second)
		}
		var res nfsv3.Create3res
		if err := nfsclient.DecodeReply(first, nfsclient.Into(&res, nfsv3.ReadCreate3res)); err != nil {
			t.Fatal(err)
		}
		ok, _ := res.(*nfsv3.Create3res_NFS3_OK)
		if ok == nil {
			t.Fatalf("CREATE: %s", statusName(res.GetStatus()))
		}
		a, st, err := c.Getattr(cx, nfsclient.Handle(ok.Resok.Obj))
		must(t, "GETATTR dup-attrs", st, err)
		if a.Uid != 4242 || a.Mtime != nfsclient.Time(mtime) {
			t.Fatalf("CREATE with uid 4242 and mtime %v: %+v", mtime, a)
		}
	})
	t.Run("same xid, other arguments", func(t *testing.T) {
		const xid = 0x7b000001
		a, st, err := c.CreateXID(cx, xid, root, "n1", nfsclient.Guarded(nfsclient.Set{}))
		must(t, "CREATE n1", st, err)
		b, st, err := c.CreateXID(cx, xid, root, "n2", nfsclient.Guarded(nfsclient.Set{}))
		must(t, "CREATE n2 with the same xid", st, err)
		if bytes.Equal(nfsclient.Handle(a.Obj), nfsclient.Handle(b.Obj)) {
			t.Fatal("n2 got n1's handle: the server replayed another request's reply")
		}
		for _, name := range []string{"n1", "n2"} {
			if _, st, err := c.Lookup(cx, root, name); err != nil || st != nfsv3.NFS3_OK {
				t.Fatalf("LOOKUP %s: %s %v", name, statusName(st), err)
			}
		}
	})
	t.Run("same xid, other client", func(t *testing.T) {
		const xid = 0x7b000002
		_, st, err := c.CreateXID(cx, xid, root, "m", nfsclient.Guarded(nfsclient.Set{}))
		must(t, "CREATE m", st, err)
		other := s.dial(nfsclient.Options{Machine: "another-host"})
		_, st, err = other.CreateXID(cx, xid, root, "m", nfsclient.Guarded(nfsclient.Set{}))
		wantStatus(t, "CREATE m from another client with the same xid", st, err, nfsv3.NFS3ERR_EXIST)
	})
}

// nfsResult decodes only the status word of an NFS result.
type nfsResult struct{ st nfsv3.Nfsstat3 }

func readStatus(r *nfsResult) io.ReaderFrom {
	return nfsclient.ReaderFunc(func(rd io.Reader) (int64, error) {
		var b [4]byte
		n, err := io.ReadFull(rd, b[:])
		r.st = nfsv3.Nfsstat3(int32(binary.BigEndian.Uint32(b[:])))
		_, _ = io.Copy(io.Discard, rd)
		return int64(n), err
	})
}

// replyStatus returns the NFS status of a reply record.
func replyStatus(t *testing.T, rec []byte) nfsv3.Nfsstat3 {
	t.Helper()
	var r nfsResult
	if err := nfsclient.DecodeReply(rec, readStatus(&r)); err != nil {
		t.Fatal(err)
	}
	return r.st
}
