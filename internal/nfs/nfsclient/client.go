// Package nfsclient is a small NFSv3 client (ONC RPC over TCP, MOUNT v3, the
// portmapper's GETPORT and DUMP) for keel's tests, the tunnel's tests and the
// chaos harness. It is not a general-purpose client: it does not reconnect,
// retransmit, cache or follow the portmapper; a test decides all of that.
//
// One Client is one TCP connection with any number of calls in flight: each
// call registers its xid, a reader goroutine hands every reply to the call
// with that xid, so replies may come back in any order. Call and CallXID
// send any procedure of any program with the generated XDR types of
// github.com/buildbarn/go-xdr; they return the RPC-level failures (the server
// did not run the procedure) as *RPCError values that errors.Is matches
// against ErrProgUnavail, ErrProgMismatch, ErrProcUnavail, ErrGarbageArgs,
// ErrSystemErr, ErrRPCMismatch and ErrAuth. The convenience methods (Mount,
// Lookup, Create, Write, ReaddirPlus, …) return the NFS status separately
// from such errors: (result, nfsv3.Nfsstat3, error), with the result set
// only when the status is NFS3_OK.
package nfsclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// Options choose the credentials every call of a Client carries.
type Options struct {
	UID, GID uint32
	GIDs     []uint32 // supplementary groups (at most 16)
	Machine  string   // AUTH_SYS machine name; default: the host name
	AuthNone bool     // send AUTH_NONE instead of AUTH_SYS
	// MaxRecord bounds the size of a reply record; 0 means 4 MiB.
	MaxRecord int
}

// Client is one connection to an ONC RPC server.
type Client struct {
	conn      net.Conn
	cred      rpcv2.OpaqueAuth
	maxRecord int

	wmu sync.Mutex // serializes record writes

	mu      sync.Mutex
	nextXID uint32
	pending map[uint32]chan []byte
	err     error // why the connection ended, once it has
	done    chan struct{}
}

// ErrClosed is returned by calls on a client whose connection has ended;
// the error wraps it together with the cause.
var ErrClosed = errors.New("nfsclient: connection closed")

// ErrXIDInFlight is returned by CallXID when a call with the same xid is
// still waiting for its reply on this client.
var ErrXIDInFlight = errors.New("nfsclient: a call with this xid is in flight")

// Dial connects to addr (host:port) and starts the reply reader.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient runs the client over an established connection, which it owns
// from then on.
func NewClient(conn net.Conn, opts Options) (*Client, error) {
	cred, err := credential(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, cred: cred, maxRecord: opts.MaxRecord,
		nextXID: rand.Uint32(), pending: map[uint32]chan []byte{}, done: make(chan struct{})}
	if c.maxRecord <= 0 {
		c.maxRecord = 4 << 20
	}
	go c.readLoop()
	return c, nil
}

func credential(o Options) (rpcv2.OpaqueAuth, error) {
	if o.AuthNone {
		return rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, nil
	}
	if len(o.GIDs) > 16 {
		return rpcv2.OpaqueAuth{}, fmt.Errorf("nfsclient: %d supplementary groups, AUTH_SYS carries at most 16", len(o.GIDs))
	}
	m := o.Machine
	if m == "" {
		m, _ = os.Hostname()
		if m == "" {
			m = "nfsclient"
		}
	}
	p := rpcv2.AuthsysParms{Stamp: uint32(time.Now().Unix()), Machinename: m, Uid: o.UID, Gid: o.GID, Gids: o.GIDs}
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil {
		return rpcv2.OpaqueAuth{}, fmt.Errorf("nfsclient: AUTH_SYS credential: %w", err)
	}
	return rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_SYS, Body: b.Bytes()}, nil
}

// LocalAddr returns the client's end of the connection.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close closes the connection; calls in flight fail with ErrClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// readLoop hands each reply record to the call waiting for its xid; a reply
// nobody waits for (its call gave up) is dropped.
func (c *Client) readLoop() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	var err error
	for {
		var rec []byte
		rec, err = ReadRecord(r, c.maxRecord)
		if err != nil {
			break
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		c.mu.Lock()
		ch, ok := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if ok {
			ch <- rec
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	for xid, ch := range c.pending {
		close(ch)
		delete(c.pending, xid)
	}
	c.mu.Unlock()
	close(c.done)
}

// ReadRecord reads one record-marked record (RFC 5531 §11) of at most max
// bytes, joining its fragments.
func ReadRecord(r io.Reader, max int) ([]byte, error) {
	var rec []byte
	var hdr [4]byte
	for frag := 0; ; frag++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if frag > 0 && errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ (1 << 31))
		if len(rec)+n > max {
			return nil, fmt.Errorf("nfsclient: record of more than %d bytes", max)
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		if h&(1<<31) != 0 {
			return rec, nil
		}
	}
}

// NextXID returns a fresh xid from the client's sequence (which starts at a
// random value, as real clients' do, so that the server's duplicate request
// cache never mistakes two clients' calls for one another).
func (c *Client) NextXID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextXID++
	return c.nextXID
}

// Call calls procedure proc of program prog, version vers. args may be nil
// for a procedure without arguments, res nil for one without results. An
// error is an *RPCError when the server answered without running the
// procedure, ErrClosed (wrapped) when the connection ended, or the context's
// error.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, args io.WriterTo, res io.ReaderFrom) error {
	return c.CallXID(ctx, c.NextXID(), prog, vers, proc, args, res)
}

// CallXID is Call with a chosen xid: sending the same call twice with one
// xid is what a client's retransmission looks like to the server's
// duplicate request cache.
func (c *Client) CallXID(ctx context.Context, xid, prog, vers, proc uint32, args io.WriterTo, res io.ReaderFrom) error {
	rec, err := c.roundTrip(ctx, xid, func() ([]byte, error) { return c.EncodeCall(xid, prog, vers, proc, args) })
	if err != nil {
		return err
	}
	return DecodeReply(rec, res)
}

// EncodeCall returns the record (record mark included, one fragment) of a
// call with this client's credentials, for SendRaw.
func (c *Client) EncodeCall(xid, prog, vers, proc uint32, args io.WriterTo) ([]byte, error) {
	msg := rpcv2.RpcMsg{Xid: xid, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{
		Rpcvers: 2, Prog: prog, Vers: vers, Proc: proc, Cred: c.cred, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
	buf := bytes.NewBuffer(make([]byte, 4, 4+msg.GetEncodedSizeBytes()+256))
	if _, err := msg.WriteTo(buf); err != nil {
		return nil, err
	}
	if args != nil {
		if _, err := args.WriteTo(buf); err != nil {
			return nil, fmt.Errorf("nfsclient: encode arguments: %w", err)
		}
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)|1<<31)
	return b, nil
}

// SendRaw writes bytes exactly as given (record marks included: one record,
// possibly in several fragments) and returns the reply record with xid, for
// tests that hand-build calls or compare replies byte for byte.
func (c *Client) SendRaw(ctx context.Context, xid uint32, raw []byte) ([]byte, error) {
	return c.roundTrip(ctx, xid, func() ([]byte, error) { return raw, nil })
}

func (c *Client) roundTrip(ctx context.Context, xid uint32, encode func() ([]byte, error)) ([]byte, error) {
	b, err := encode()
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	if _, busy := c.pending[xid]; busy {
		c.mu.Unlock()
		return nil, ErrXIDInFlight
	}
	c.pending[xid] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.pending[xid] == ch {
			delete(c.pending, xid)
		}
		c.mu.Unlock()
	}
	if err := c.write(ctx, b); err != nil {
		forget()
		return nil, err
	}
	select {
	case rec, ok := <-ch:
		if !ok {
			return nil, c.Err()
		}
		return rec, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

func (c *Client) write(ctx context.Context, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl, _ := ctx.Deadline()
	_ = c.conn.SetWriteDeadline(dl)
	if _, err := c.conn.Write(b); err != nil {
		_ = c.conn.Close() // a partly written record leaves the stream unusable
		return fmt.Errorf("%w: write: %w", ErrClosed, err)
	}
	return nil
}

// DecodeReply checks a reply record's header (an *RPCError if the server
// did not run the procedure) and decodes its results into res (if not nil).
func DecodeReply(rec []byte, res io.ReaderFrom) error {
	rd := bytes.NewReader(rec)
	var msg rpcv2.RpcMsg
	if _, err := msg.ReadFrom(rd); err != nil {
		return fmt.Errorf("nfsclient: bad reply header: %w", err)
	}
	body, ok := msg.Body.(*rpcv2.RpcMsgBody_REPLY)
	if !ok {
		return errors.New("nfsclient: a call came back where a reply was expected")
	}
	switch rb := body.Rbody.(type) {
	case *rpcv2.ReplyBody_MSG_DENIED:
		e := &RPCError{Denied: true, Reject: rb.Rreply.GetStat()}
		switch rr := rb.Rreply.(type) {
		case *rpcv2.RejectedReply_RPC_MISMATCH:
			e.Low, e.High = rr.MismatchInfo.Low, rr.MismatchInfo.High
		case *rpcv2.RejectedReply_AUTH_ERROR:
			e.Auth = rr.Stat
		}
		return e
	case *rpcv2.ReplyBody_MSG_ACCEPTED:
		switch d := rb.Areply.ReplyData.(type) {
		case *rpcv2.AcceptedReplyData_SUCCESS:
		case *rpcv2.AcceptedReplyData_PROG_MISMATCH:
			return &RPCError{Accept: rpcv2.PROG_MISMATCH, Low: d.MismatchInfo.Low, High: d.MismatchInfo.High}
		default:
			return &RPCError{Accept: d.GetStat()}
		}
	default:
		return errors.New("nfsclient: unknown reply body")
	}
	if res == nil {
		return nil
	}
	if _, err := res.ReadFrom(rd); err != nil {
		return fmt.Errorf("nfsclient: decode results: %w", err)
	}
	return nil
}

// RPCError is a reply saying that the server did not run the procedure:
// accepted with a status other than SUCCESS, or denied.
type RPCError struct {
	Denied bool
	Accept rpcv2.AcceptStat // when accepted: PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR
	Reject rpcv2.RejectStat // when denied: RPC_MISMATCH or AUTH_ERROR
	Auth   rpcv2.AuthStat   // AUTH_ERROR: why
	// Low and High are the versions supported (PROG_MISMATCH: of the
	// program; RPC_MISMATCH: of RPC).
	Low, High uint32
}

// The RPC errors by kind, for errors.Is.
var (
	ErrProgUnavail  = &RPCError{Accept: rpcv2.PROG_UNAVAIL}
	ErrProgMismatch = &RPCError{Accept: rpcv2.PROG_MISMATCH}
	ErrProcUnavail  = &RPCError{Accept: rpcv2.PROC_UNAVAIL}
	ErrGarbageArgs  = &RPCError{Accept: rpcv2.GARBAGE_ARGS}
	ErrSystemErr    = &RPCError{Accept: rpcv2.SYSTEM_ERR}
	ErrRPCMismatch  = &RPCError{Denied: true, Reject: rpcv2.RPC_MISMATCH}
	ErrAuth         = &RPCError{Denied: true, Reject: rpcv2.AUTH_ERROR}
)

// Is matches errors of the same kind (accept or reject status), whatever
// their versions or auth status.
func (e *RPCError) Is(target error) bool {
	t, ok := target.(*RPCError)
	if !ok || t.Denied != e.Denied {
		return false
	}
	if e.Denied {
		return t.Reject == e.Reject
	}
	return t.Accept == e.Accept
}

func (e *RPCError) Error() string {
	if e.Denied {
		switch e.Reject {
		case rpcv2.RPC_MISMATCH:
			return fmt.Sprintf("rpc: denied: RPC_MISMATCH (versions %d-%d)", e.Low, e.High)
		case rpcv2.AUTH_ERROR:
			return fmt.Sprintf("rpc: denied: AUTH_ERROR (auth_stat %d)", e.Auth)
		}
		return fmt.Sprintf("rpc: denied (reject_stat %d)", e.Reject)
	}
	switch e.Accept {
	case rpcv2.PROG_UNAVAIL:
		return "rpc: PROG_UNAVAIL"
	case rpcv2.PROG_MISMATCH:
		return fmt.Sprintf("rpc: PROG_MISMATCH (versions %d-%d)", e.Low, e.High)
	case rpcv2.PROC_UNAVAIL:
		return "rpc: PROC_UNAVAIL"
	case rpcv2.GARBAGE_ARGS:
		return "rpc: GARBAGE_ARGS"
	case rpcv2.SYSTEM_ERR:
		return "rpc: SYSTEM_ERR"
	}
	return fmt.Sprintf("rpc: accept_stat %d", e.Accept)
}
