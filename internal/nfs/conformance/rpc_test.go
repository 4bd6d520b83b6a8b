package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
	"keel/internal/nfs/rpc"
)

// Golden tests of the ONC RPC layer (RFC 5531) with hand-built bytes: record
// marking, replies matched by xid, and every way of refusing a call.

const (
	nfsProg   = 100003
	mountProg = 100005
	pmapProg  = 100000
)

func be32(vs ...uint32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// call is a hand-built call message (no record mark).
type call struct {
	xid, rpcvers, prog, vers, proc uint32
	flavor                         uint32
	cred                           []byte // credential body (padded here)
	args                           []byte
}

func (c call) bytes() []byte {
	b := be32(c.xid, 0, c.rpcvers, c.prog, c.vers, c.proc, c.flavor, uint32(len(c.cred)))
	b = append(b, c.cred...)
	b = append(b, make([]byte, (4-len(c.cred)%4)%4)...)
	b = append(b, be32(0, 0)...) // verifier: AUTH_NONE
	return append(b, c.args...)
}

// nullCall is NFSPROC3_NULL with AUTH_NONE.
func nullCall(xid uint32) call { return call{xid: xid, rpcvers: 2, prog: nfsProg, vers: 3} }

// record frames a message as one record of the given fragments.
func record(frags ...[]byte) []byte {
	var b []byte
	for i, f := range frags {
		mark := uint32(len(f))
		if i == len(frags)-1 {
			mark |= 1 << 31
		}
		b = append(b, be32(mark)...)
		b = append(b, f...)
	}
	return b
}

// accepted and denied are golden reply messages: the xid, REPLY, then the
// reply body (with an AUTH_NONE verifier when accepted).
func accepted(xid, stat uint32, more ...uint32) []byte {
	return be32(append([]uint32{xid, 1, 0, 0, 0, stat}, more...)...)
}

func denied(xid uint32, more ...uint32) []byte {
	return be32(append([]uint32{xid, 1, 1}, more...)...)
}

func rawConn(t *testing.T, s *server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readReply reads one reply record within 10 s.
func readReply(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rec, err := nfsclient.ReadRecord(c, 1<<20)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return rec
}

func TestRPCCallInThreeFragments(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := rawConn(t, s)
	msg := nullCall(0x01020304).bytes()
	send(t, c, record(msg[:10], msg[10:27], msg[27:]))
	if got, want := readReply(t, c), accepted(0x01020304, 0); !bytes.Equal(got, want) {
		t.Fatalf("NULL in 3 fragments: reply\n% x\nwant\n% x", got, want)
	}

	// A call with arguments, split inside the file handle.
	_, root := s.rootClient()
	var args bytes.Buffer
	if _, err := (&nfsv3.Getattr3args{Object: nfsv3.NfsFh3{Data: root}}).WriteTo(&args); err != nil {
		t.Fatal(err)
	}
	getattr := call{xid: 77, rpcvers: 2, prog: nfsProg, vers: 3, proc: nfsclient.ProcGetattr, args: args.Bytes()}.bytes()
	cut := len(getattr) - 20
	send(t, c, record(getattr[:5], getattr[5:cut], getattr[cut:]))
	rep := readReply(t, c)
	if !bytes.Equal(rep[:24], accepted(77, 0)) || len(rep) < 28 || binary.BigEndian.Uint32(rep[24:]) != uint32(nfsv3.NFS3_OK) {
		t.Fatalf("GETATTR in 3 fragments: reply % x", rep)
	}
}

func TestRPCTwoCallsBackToBack(t *testing.T) {
	s := startServer(t, serverOpts{})
	_, root := s.rootClient()
	c := rawConn(t, s)
	var args bytes.Buffer
	if _, err := (&nfsv3.Getattr3args{Object: nfsv3.NfsFh3{Data: root}}).WriteTo(&args); err != nil {
		t.Fatal(err)
	}
	first := call{xid: 1001, rpcvers: 2, prog: nfsProg, vers: 3, proc: nfsclient.ProcGetattr, args: args.Bytes()}
	second := nullCall(1002)
	// Both records in one write.
	send(t, c, append(record(first.bytes()), record(second.bytes())...))
	replies := map[uint32][]byte{}
	for i := 0; i < 2; i++ {
		rep := readReply(t, c)
		replies[binary.BigEndian.Uint32(rep)] = rep
	}
	if got, want := replies[1002], accepted(1002, 0); !bytes.Equal(got, want) {
		t.Errorf("NULL (xid 1002): reply % x, want % x", got, want)
	}
	var res nfsv3.Getattr3res
	if err := nfsclient.DecodeReply(replies[1001], nfsclient.Into(&res, nfsv3.ReadGetattr3res)); err != nil {
		t.Fatalf("GETATTR (xid 1001): %v (reply % x)", err, replies[1001])
	}
	ok, _ := res.(*nfsv3.Getattr3res_NFS3_OK)
	if ok == nil || ok.Resok.ObjAttributes.Type != nfsv3.NF3DIR || ok.Resok.ObjAttributes.Fileid != 1 {
		t.Errorf("GETATTR (xid 1001) of the root: %+v", res)
	}
}

// expectClosed waits until the server closes the connection.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after 10 s", what)
	}
	if n != 0 {
		t.Fatalf("%s: the server answered %d bytes before closing", what, n)
	}
}

func TestRPCRecordOverLimitClosesConnection(t *testing.T) {
	s := startServer(t, serverOpts{})
	t.Run("one fragment", func(t *testing.T) {
		c := rawConn(t, s)
		send(t, c, be32(uint32(rpc.DefaultMaxRecord+1)|1<<31))
		send(t, c, nullCall(5).bytes())
		expectClosed(t, c, "a record mark above the limit")
	})
	t.Run("fragments adding up", func(t *testing.T) {
		c := rawConn(t, s)
		msg := nullCall(6).bytes()
		big := make([]byte, rpc.DefaultMaxRecord-len(msg)+1)
		send(t, c, be32(uint32(len(msg))))
		send(t, c, msg)
		// The server may close before it has read all of this.
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write(append(be32(uint32(len(big))|1<<31), big...))
		expectClosed(t, c, "fragments adding up to more than the limit")
	})
	t.Run("other connections go on", func(t *testing.T) {
		c := rawConn(t, s)
		send(t, c, record(nullCall(7).bytes()))
		if got := readReply(t, c); !bytes.Equal(got, accepted(7, 0)) {
			t.Fatalf("NULL: reply % x", got)
		}
	})
}

// TestRPCRefusals sends calls the server must refuse, on one connection,
// and compares each reply with its golden bytes; the connection keeps
// working after each.
func TestRPCRefusals(t *testing.T) {
	s := startServer(t, serverOpts{})
	const anyStat = ^uint32(0)
	cases := []struct {
		name string
		call call
		want []byte
		// alt is a second acceptable last word (auth_stat), or anyStat.
		alt uint32
	}{
		{"RPC version 3", call{rpcvers: 3, prog: nfsProg, vers: 3}, denied(0, 0, 2, 2), anyStat},
		{"unknown program", call{rpcvers: 2, prog: 200000, vers: 1}, accepted(0, 1), anyStat},
		{"NFS version 2", call{rpcvers: 2, prog: nfsProg, vers: 2}, accepted(0, 2, 3, 3), anyStat},
		{"NFS version 4", call{rpcvers: 2, prog: nfsProg, vers: 4}, accepted(0, 2, 3, 3), anyStat},
		{"NFS procedure 99", call{rpcvers: 2, prog: nfsProg, vers: 3, proc: 99}, accepted(0, 3), anyStat},
		{"NFS procedure 22", call{rpcvers: 2, prog: nfsProg, vers: 3, proc: 22}, accepted(0, 3), anyStat},
		{"MOUNT version 4", call{rpcvers: 2, prog: mountProg, vers: 4}, accepted(0, 2, 3, 3), anyStat},
		{"MOUNT procedure 99", call{rpcvers: 2, prog: mountProg, vers: 3, proc: 99}, accepted(0, 3), anyStat},
		{"portmapper version 3", call{rpcvers: 2, prog: pmapProg, vers: 3}, accepted(0, 2, 2, 2), anyStat},
		{"portmapper procedure 99", call{rpcvers: 2, prog: pmapProg, vers: 2, proc: 99}, accepted(0, 3), anyStat},
		{"GETATTR with truncated arguments", call{rpcvers: 2, prog: nfsProg, vers: 3, proc: nfsclient.ProcGetattr,
			args: []byte{0, 0}}, accepted(0, 4), anyStat},
		{"LOOKUP with a name length past the end", call{rpcvers: 2, prog: nfsProg, vers: 3, proc: nfsclient.ProcLookup,
			args: be32(0, 1000)}, accepted(0, 4), anyStat},
		{"MNT with truncated arguments", call{rpcvers: 2, prog: mountProg, vers: 3, proc: 1, args: be32(8)}, accepted(0, 4), anyStat},
		{"GETPORT with truncated arguments", call{rpcvers: 2, prog: pmapProg, vers: 2, proc: 3, args: be32(100003)}, accepted(0, 4), anyStat},
		// Unknown flavor: RFC 5531 leaves the auth_stat open; Linux answers
		// AUTH_BADCRED, keel AUTH_REJECTEDCRED.
		{"unknown auth flavor", call{rpcvers: 2, prog: nfsProg, vers: 3, flavor: 9, cred: []byte{1, 2, 3, 4}}, denied(0, 1, 2), 1},
		{"AUTH_DH", call{rpcvers: 2, prog: nfsProg, vers: 3, flavor: 3}, denied(0, 1, 2), 1},
		{"AUTH_SYS credential that does not decode", call{rpcvers: 2, prog: nfsProg, vers: 3, flavor: 1, cred: []byte{0, 0, 0, 1, 0xff}},
			denied(0, 1, 1), anyStat},
	}
	c := rawConn(t, s)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			xid := uint32(0x5000 + i)
			tc.call.xid = xid
			binary.BigEndian.PutUint32(tc.want, xid)
			send(t, c, record(tc.call.bytes()))
			got := readReply(t, c)
			ok := bytes.Equal(got, tc.want)
			if !ok && tc.alt != anyStat && len(got) == len(tc.want) && bytes.Equal(got[:len(got)-4], tc.want[:len(got)-4]) {
				ok = binary.BigEndian.Uint32(got[len(got)-4:]) == tc.alt
			}
			if !ok {
				t.Fatalf("reply\n% x\nwant\n% x", got, tc.want)
			}
			send(t, c, record(nullCall(xid+0x100).bytes()))
			if got := readReply(t, c); !bytes.Equal(got, accepted(xid+0x100, 0)) {
				t.Fatalf("NULL after it on the same connection: reply % x", got)
			}
		})
	}
}

// TestRPCErrorsThroughClient checks that nfsclient reports refusals as typed
// errors.
func TestRPCErrorsThroughClient(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := s.dial(nfsclient.Options{})
	garbage := nfsclient.WriterFunc(func(w io.Writer) (int64, error) { n, err := w.Write([]byte{1, 2}); return int64(n), err })
	cases := []struct {
		name             string
		prog, vers, proc uint32
		args             io.WriterTo
		want             error
		low, high        uint32
	}{
		{"unknown program", 200000, 1, 0, nil, nfsclient.ErrProgUnavail, 0, 0},
		{"NFS version 4", nfsProg, 4, 0, nil, nfsclient.ErrProgMismatch, 3, 3},
		{"MOUNT version 7", mountProg, 7, 0, nil, nfsclient.ErrProgMismatch, 3, 3},
		{"MOUNT version 1", mountProg, 1, 0, nil, nfsclient.ErrProgMismatch, 3, 3},
		{"NFS procedure 99", nfsProg, 3, 99, nil, nfsclient.ErrProcUnavail, 0, 0},
		{"GETATTR with garbage", nfsProg, 3, nfsclient.ProcGetattr, garbage, nfsclient.ErrGarbageArgs, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Call(ctx(t), tc.prog, tc.vers, tc.proc, tc.args, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var re *nfsclient.RPCError
			if !errors.As(err, &re) || re.Low != tc.low || re.High != tc.high {
				t.Fatalf("error %#v, want versions %d-%d", err, tc.low, tc.high)
			}
		})
	}
	if err := c.Null(ctx(t)); err != nil {
		t.Fatalf("NULL after the refusals: %v", err)
	}
	if err := c.Call(ctx(t), mountProg, 3, 0, nil, nil); err != nil {
		t.Fatalf("MOUNT NULL: %v", err)
	}
}
