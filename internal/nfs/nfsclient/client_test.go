package nfsclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// fakeServer accepts one connection and hands the test each call it reads.
type fakeServer struct {
	t     *testing.T
	addr  string
	conn  chan net.Conn
	calls chan rpcv2.RpcMsg
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeServer{t: t, addr: ln.Addr().String(), conn: make(chan net.Conn, 1), calls: make(chan rpcv2.RpcMsg, 64)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		f.conn <- c
		for {
			rec, err := ReadRecord(c, 1<<20)
			if err != nil {
				close(f.calls)
				return
			}
			var m rpcv2.RpcMsg
			if _, err := m.ReadFrom(bytes.NewReader(rec)); err == nil {
				f.calls <- m
			}
		}
	}()
	return f
}

func (f *fakeServer) next() rpcv2.RpcMsg {
	f.t.Helper()
	select {
	case m := <-f.calls:
		return m
	case <-time.After(10 * time.Second):
		f.t.Fatal("no call within 10 s")
	}
	return rpcv2.RpcMsg{}
}

func (f *fakeServer) reply(c net.Conn, words ...uint32) {
	f.t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(4*len(words))|1<<31)
	for _, w := range words {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	if _, err := c.Write(b); err != nil {
		f.t.Fatal(err)
	}
}

func dial(t *testing.T, addr string, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// uint32Result decodes one XDR unsigned int.
func uint32Result(v *uint32) io.ReaderFrom {
	return ReaderFunc(func(r io.Reader) (int64, error) {
		var b [4]byte
		n, err := io.ReadFull(r, b[:])
		*v = binary.BigEndian.Uint32(b[:])
		return int64(n), err
	})
}

func TestRepliesOutOfOrderAndCredentials(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f.addr, Options{UID: 1000, GID: 100, GIDs: []uint32{4, 5}, Machine: "box"})
	conn := <-f.conn
	type result struct {
		v   uint32
		err error
	}
	results := make([]chan result, 2)
	for i := range results {
		results[i] = make(chan result, 1)
		go func() {
			var v uint32
			err := c.Call(context.Background(), 100003, 3, uint32(i+1), nil, uint32Result(&v))
			results[i] <- result{v, err}
		}()
	}
	calls := map[uint32]uint32{} // proc → xid
	for i := 0; i < 2; i++ {
		m := f.next()
		cb := m.Body.(*rpcv2.RpcMsgBody_CALL).Cbody
		calls[cb.Proc] = m.Xid
		var p rpcv2.AuthsysParms
		if cb.Cred.Flavor != rpcv2.AUTH_SYS {
			t.Fatalf("credential flavor %d", cb.Cred.Flavor)
		}
		if _, err := p.ReadFrom(bytes.NewReader(cb.Cred.Body)); err != nil || p.Uid != 1000 || p.Gid != 100 ||
			p.Machinename != "box" || len(p.Gids) != 2 || p.Gids[1] != 5 {
			t.Fatalf("AUTH_SYS credential %+v %v", p, err)
		}
	}
	// Answer in reverse order: each call gets its own reply.
	f.reply(conn, calls[2], 1, 0, 0, 0, 0, 222)
	f.reply(conn, calls[1], 1, 0, 0, 0, 0, 111)
	for i, want := range []uint32{111, 222} {
		select {
		case r := <-results[i]:
			if r.err != nil || r.v != want {
				t.Fatalf("call %d: %d %v, want %d", i+1, r.v, r.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d: no result", i+1)
		}
	}
}

func TestRPCErrorsDecode(t *testing.T) {
	cases := []struct {
		name  string
		words []uint32
		is    error
		check func(*RPCError) bool
	}{
		{"PROG_UNAVAIL", []uint32{1, 0, 0, 0, 1}, ErrProgUnavail, nil},
		{"PROG_MISMATCH", []uint32{1, 0, 0, 0, 2, 3, 4}, ErrProgMismatch, func(e *RPCError) bool { return e.Low == 3 && e.High == 4 }},
		{"PROC_UNAVAIL", []uint32{1, 0, 0, 0, 3}, ErrProcUnavail, nil},
		{"GARBAGE_ARGS", []uint32{1, 0, 0, 0, 4}, ErrGarbageArgs, nil},
		{"SYSTEM_ERR", []uint32{1, 0, 0, 0, 5}, ErrSystemErr, nil},
		{"RPC_MISMATCH", []uint32{1, 1, 0, 2, 2}, ErrRPCMismatch, func(e *RPCError) bool { return e.Low == 2 && e.High == 2 }},
		{"AUTH_ERROR", []uint32{1, 1, 1, 5}, ErrAuth, func(e *RPCError) bool { return e.Auth == rpcv2.AUTH_TOOWEAK }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := words(append([]uint32{42}, tc.words...)...)
			err := DecodeReply(rec, nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("%v is not %v", err, tc.is)
			}
			for _, other := range []error{ErrProgUnavail, ErrProgMismatch, ErrProcUnavail, ErrGarbageArgs, ErrSystemErr, ErrRPCMismatch, ErrAuth} {
				if other != tc.is && errors.Is(err, other) {
					t.Fatalf("%v also matches %v", err, other)
				}
			}
			var re *RPCError
			if !errors.As(err, &re) || tc.check != nil && !tc.check(re) {
				t.Fatalf("%#v", err)
			}
		})
	}
	if err := DecodeReply(words(42, 1, 0, 0, 0, 0), nil); err != nil {
		t.Fatalf("SUCCESS: %v", err)
	}
}

func TestCancelCloseAndXIDInFlight(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f.addr, Options{AuthNone: true})
	conn := <-f.conn

	// A call whose context ends gives up; the late reply is dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := c.CallXID(ctx, 7, 100003, 3, 0, nil, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call without a reply: %v", err)
	}
	if m := f.next(); m.Body.(*rpcv2.RpcMsgBody_CALL).Cbody.Cred.Flavor != rpcv2.AUTH_NONE {
		t.Fatal("AuthNone client sent another flavor")
	}
	f.reply(conn, 7, 1, 0, 0, 0, 0)

	// Two calls with one xid cannot be in flight together.
	done := make(chan error, 1)
	go func() { done <- c.CallXID(context.Background(), 8, 100003, 3, 0, nil, nil) }()
	f.next()
	if err := c.CallXID(context.Background(), 8, 100003, 3, 0, nil, nil); !errors.Is(err, ErrXIDInFlight) {
		t.Fatalf("second call with xid 8: %v", err)
	}
	f.reply(conn, 8, 1, 0, 0, 0, 0)
	if err := <-done; err != nil {
		t.Fatalf("call with xid 8: %v", err)
	}

	// The connection ends: calls in flight fail with ErrClosed, and so do
	// later ones.
	go func() { done <- c.CallXID(context.Background(), 9, 100003, 3, 0, nil, nil) }()
	f.next()
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("call in flight when the connection closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call in flight did not fail when the connection closed")
	}
	if err := c.Call(context.Background(), 100003, 3, 0, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after the connection closed: %v", err)
	}
	<-c.Done()
}

func TestReadRecordFragments(t *testing.T) {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 3)
	b = append(b, "abc"...)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 2|1<<31)
	b = append(b, "de"...)
	rec, err := ReadRecord(bytes.NewReader(b), 10)
	if err != nil || string(rec) != "abcde" {
		t.Fatalf("%q %v", rec, err)
	}
	if _, err := ReadRecord(bytes.NewReader(b), 4); err == nil {
		t.Fatal("a 5-byte record read with a 4-byte limit")
	}
	if _, err := ReadRecord(bytes.NewReader(b[:9]), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated record: %v", err)
	}
	if _, err := ReadRecord(bytes.NewReader(nil), 10); !errors.Is(err, io.EOF) {
		t.Fatalf("no record: %v", err)
	}
}

func TestStringAndSattr(t *testing.T) {
	var b bytes.Buffer
	if _, err := String("café").WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if want := append(binary.BigEndian.AppendUint32(nil, 5), 'c', 'a', 'f', 0xc3, 0xa9, 0, 0, 0); !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("String: % x", b.Bytes())
	}
	b.Reset()
	a := Set{Mode: new(uint32(0o644)), MtimeNow: true}.Sattr3()
	if _, err := a.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	// mode: TRUE 0644; uid, gid, size: FALSE; atime DONT_CHANGE; mtime SET_TO_SERVER_TIME.
	want := words(1, 0o644, 0, 0, 0, 0, 1)
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("sattr3: % x, want % x", b.Bytes(), want)
	}
}

func words(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}
