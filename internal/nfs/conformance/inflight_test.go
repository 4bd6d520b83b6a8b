package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestManyCallsInFlight runs hundreds of calls at once on one connection:
// the server answers each (in whatever order), the client matches replies
// to calls by xid.
func TestManyCallsInFlight(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	const files, rounds = 40, 5
	handles := make([][]byte, files)
	for i := range handles {
		handles[i] = s.fileAs(root, fmt.Sprintf("f%d", i), 0, 0, 0o644, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, files*rounds*3)
	for i := 0; i < files; i++ {
		for r := 0; r < rounds; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := bytes.Repeat([]byte{byte(i)}, 1000)
				if _, st, err := c.Write(cx, handles[i], uint64(r*1000), data); err != nil || st != nfsv3.NFS3_OK {
					errs <- fmt.Errorf("WRITE f%d round %d: %d %v", i, r, st, err)
					return
				}
				if a, st, err := c.Getattr(cx, handles[i]); err != nil || st != nfsv3.NFS3_OK || a.Fileid == 0 {
					errs <- fmt.Errorf("GETATTR f%d: %d %v", i, st, err)
				}
				if err := c.Null(cx); err != nil {
					errs <- fmt.Errorf("NULL: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, h := range handles {
		got, err := c.ReadFile(cx, h, 0, 1<<20)
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, rounds*1000)) {
			t.Errorf("f%d: %d bytes, %v", i, len(got), err)
		}
	}

	// A burst of raw calls in one write: every one is answered once.
	raw := rawConn(t, s)
	var burst []byte
	const n = 200
	for i := 0; i < n; i++ {
		burst = append(burst, record(nullCall(uint32(9000+i)).bytes())...)
	}
	send(t, raw, burst)
	seen := map[uint32]bool{}
	for i := 0; i < n; i++ {
		rep := readReply(t, raw)
		xid := binary.BigEndian.Uint32(rep)
		if seen[xid] || !bytes.Equal(rep, accepted(xid, 0)) {
			t.Fatalf("reply %d: % x (xid seen before: %v)", i, rep, seen[xid])
		}
		seen[xid] = true
	}
}

// TestReaddirReplySize: a READDIR or READDIRPLUS reply never exceeds the
// count (maxcount) the client asked for.
func TestReaddirReplySize(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	dir := s.mkdirIn(c, root, "dir")
	s.createEntries(dir, "a-rather-long-entry-name-to-fill-pages-", 300)
	cx := ctx(t)
	for _, count := range []uint32{512, 1000, 4096, 8192} {
		for _, plus := range []bool{false, true} {
			cookie, verf := uint64(0), [8]byte{}
			for pages := 0; pages < 1000; pages++ {
				xid := c.NextXID()
				var raw []byte
				var err error
				if plus {
					raw, err = c.EncodeCall(xid, nfsclient.NFSProgram, 3, nfsclient.ProcReaddirplus,
						&nfsv3.Readdirplus3args{Dir: nfsv3.NfsFh3{Data: dir}, Cookie: cookie, Cookieverf: verf, Dircount: count, Maxcount: count})
				} else {
					raw, err = c.EncodeCall(xid, nfsclient.NFSProgram, 3, nfsclient.ProcReaddir,
						&nfsv3.Readdir3args{Dir: nfsv3.NfsFh3{Data: dir}, Cookie: cookie, Cookieverf: verf, Count: count})
				}
				if err != nil {
					t.Fatal(err)
				}
				rep, err := c.SendRaw(cx, xid, raw)
				if err != nil {
					t.Fatal(err)
				}
				if size := len(rep) - 24; size > int(count) {
					t.Fatalf("count %d (plus %v): a %d-byte reply", count, plus, size)
				}
				var eof bool
				if plus {
					var res nfsv3.Readdirplus3res
					if err := nfsclient.DecodeReply(rep, nfsclient.Into(&res, nfsv3.ReadReaddirplus3res)); err != nil {
						t.Fatal(err)
					}
					ok, _ := res.(*nfsv3.Readdirplus3res_NFS3_OK)
					if ok == nil {
						t.Fatalf("READDIRPLUS: %s", statusName(res.GetStatus()))
					}
					for e := ok.Resok.Reply.Entries; e != nil; e = e.Nextentry {
						cookie = e.Cookie
					}
					verf, eof = ok.Resok.Cookieverf, ok.Resok.Reply.Eof
				} else {
					var res nfsv3.Readdir3res
					if err := nfsclient.DecodeReply(rep, nfsclient.Into(&res, nfsv3.ReadReaddir3res)); err != nil {
						t.Fatal(err)
					}
					ok, _ := res.(*nfsv3.Readdir3res_NFS3_OK)
					if ok == nil {
						t.Fatalf("READDIR: %s", statusName(res.GetStatus()))
					}
					for e := ok.Resok.Reply.Entries; e != nil; e = e.Nextentry {
						cookie = e.Cookie
					}
					verf, eof = ok.Resok.Cookieverf, ok.Resok.Reply.Eof
				}
				if eof {
					break
				}
			}
		}
	}
}
