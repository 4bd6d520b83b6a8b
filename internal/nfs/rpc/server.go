// Package rpc is keel's ONC RPC v2 server over TCP (RFC 5531): record
// marking with multi-fragment records, many calls in flight per connection
// with replies in any order, AUTH_NONE and AUTH_SYS, and the call's identity
// (xid, client address, credentials) in the context, which the duplicate
// request cache needs.
//
// It is modelled on github.com/buildbarn/go-xdr's rpcserver and dispatches to
// the same generated program services (nfsv3.NewNfsProgramService,
// mount.NewMountProgramService), but is our own because that server puts
// neither the xid nor the peer address in the context, answers a malformed
// argument by dropping the connection instead of GARBAGE_ARGS, and bounds
// neither record sizes nor calls in flight.
//
// Memory is bounded per connection and server-wide (see budget.go): the
// bytes of the calls in flight (their records and reply reservations) are
// charged before they are taken, and a connection that cannot get them
// stops being read until its replies are written.
package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// Service handles the calls of one program (the signature of go-xdr's
// generated program services).
type Service func(ctx context.Context, vers, proc uint32, args io.ReadCloser, newReturnValue func(sizeBytes int) io.Writer) (rpcv2.AcceptedReplyData, error)

// Call identifies the call being served.
type Call struct {
	XID    uint32
	Prog   uint32
	Vers   uint32
	Proc   uint32
	Remote netip.AddrPort
	Local  netip.AddrPort
	Flavor rpcv2.AuthFlavor
	Sys    *rpcv2.AuthsysParms // AUTH_SYS credentials, nil for AUTH_NONE

	replied []func() // run once the reply is written (or dropped)
}

// AfterReply arranges for f to run once the call's reply has been written
// to the connection, or given up on: a procedure that hands the encoder a
// pooled buffer (a READ's data, sent without a copy) returns it to its
// pool there. It reports false, and f does not run, outside a served call.
func AfterReply(ctx context.Context, f func()) bool {
	c, ok := CallFrom(ctx)
	if !ok {
		return false
	}
	c.replied = append(c.replied, f)
	return true
}

type callKey struct{}

// CallFrom returns the call a context belongs to.
func CallFrom(ctx context.Context) (*Call, bool) {
	c, ok := ctx.Value(callKey{}).(*Call)
	return c, ok
}

// WithCall returns a context carrying c (for tests of services).
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// Limits bound what one connection may cost.
const (
	DefaultMaxRecord   = 2<<20 + 64<<10 // a 1 MiB WRITE and then some
	DefaultMaxInFlight = 64
)

// Server serves programs on TCP connections.
type Server struct {
	Programs    map[uint32]Service
	MaxRecord   int
	MaxInFlight int           // calls in flight per connection
	IdleTimeout time.Duration // 0: none
	Logger      *slog.Logger

	// MaxInFlightBytes bounds the bytes held by the calls in flight on all
	// connections together (0: DefaultMaxInFlightBytes),
	// MaxConnInFlightBytes those of one connection (0: a sixteenth of the
	// budget). A share is at least what the largest call needs
	// (MinConnInFlightBytes will do), and at most the whole budget.
	MaxInFlightBytes     int64
	MaxConnInFlightBytes int64
	// StallTimeout: see DefaultStallTimeout (0: that).
	StallTimeout time.Duration
	// ReplyBound returns the most bytes the reply to a call may take,
	// given its program, version, procedure and the start of its
	// arguments (perhaps cut short); the call reserves that much until its
	// reply is written. Nil: MaxReplyBound for every call.
	ReplyBound func(prog, vers, proc uint32, args []byte) int
	Metrics    *Metrics

	mu       sync.Mutex
	conns    map[*conn]struct{}
	lns      map[net.Listener]struct{}
	done     bool
	lastScan int64 // Unix nanoseconds of closeStalled's last scan

	budgetOnce sync.Once
	bytes      *weighted
	workers    workers
}

var errClosed = errors.New("rpc: server closed")

// ErrSystem, returned (wrapped) by a procedure, answers the call with
// SYSTEM_ERR ("the server cannot do this now") instead of GARBAGE_ARGS, the
// answer to any other error, which comes from arguments that do not decode.
var ErrSystem = errors.New("rpc: system error")

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return errClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.ServeConn(c)
	}
}

// Close stops every listener and connection.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.workers.close()
	for ln := range s.lns {
		_ = ln.Close()
	}
	for cn := range s.conns {
		cn.close()
	}
}

// CloseConnections drops every open connection but keeps listening (a node
// that stops being the active one makes clients reconnect).
func (s *Server) CloseConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cn := range s.conns {
		cn.close()
	}
}

func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	if add {
		if s.done {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// readBufSize is each connection's read buffer: a small call arrives
// whole in it, and a large record's body is read past it, straight into
// the record's memory. It is all an idle or half-open connection costs
// beyond its goroutine (10,000 of them: 40 MiB).
const readBufSize = 4 << 10

// ServeConn serves one connection until it closes or sends garbage framing.
func (s *Server) ServeConn(c net.Conn) {
	maxRecord := s.MaxRecord
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecord
	}
	maxInFlight := s.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	cn := &conn{c: c, remote: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr()), server: s,
		sem: make(chan struct{}, maxInFlight), done: make(chan struct{}),
		share: &weighted{limit: s.connLimit(maxRecord)}}
	if !s.track(cn, true) {
		c.Close()
		return
	}
	defer s.track(cn, false)
	defer cn.close()
	r := bufio.NewReaderSize(c, readBufSize)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if s.IdleTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		}
		ic, err := cn.readCall(r, maxRecord)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errConnClosed) {
				s.logger().Debug("rpc connection closed", "remote", cn.remote, "err", err)
			}
			return
		}
		select {
		case cn.sem <- struct{}{}:
		case <-cn.done:
			ic.finish(cn)
			return
		}
		wg.Add(1)
		s.workers.run(func() {
			defer wg.Done()
			defer func() { <-cn.sem }()
			cn.handle(ic)
		})
	}
}

// growStep is the most ReadRecord allocates ahead of the bytes it has
// received (beyond that it doubles what it holds).
const growStep = 64 << 10

// ReadRecord reads one record (all its fragments) of at most limit bytes.
func ReadRecord(r io.Reader, limit int) ([]byte, error) {
	return readRecordInto(r, limit, nil)
}

// readRecordInto is ReadRecord reading into buf's memory (its contents do
// not matter) while the record fits.
func readRecordInto(r io.Reader, limit int, buf []byte) ([]byte, error) {
	rec := buf[:0]
	got := false
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || (err == io.EOF && got) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ 0x80000000)
		if len(rec)+n > limit {
			return nil, fmt.Errorf("rpc: record of more than %d bytes refused", limit)
		}
		got = got || n > 0
		var err error
		if rec, err = readFragment(r, rec, n); err != nil {
			return nil, err
		}
		if h&0x80000000 != 0 {
			if rec == nil {
				rec = []byte{}
			}
			return rec, nil
		}
	}
}

// readFragment appends the next n bytes of r to rec: into rec's spare
// capacity when they fit, else in memory that follows the bytes as they
// arrive, not the length a record mark promises (10,000 connections that
// each promise 2 MiB and send 100 bytes must not cost 20 GB).
func readFragment(r io.Reader, rec []byte, n int) ([]byte, error) {
	if start := len(rec); cap(rec)-start >= n {
		rec = rec[:start+n]
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		return rec, nil
	}
	for end := len(rec) + n; len(rec) < end; {
		start := len(rec)
		rec = append(rec, make([]byte, min(end-start, max(growStep, start)))...)
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
	}
	return rec, nil
}

// bigRecord is the capacity of the pooled record buffers: a 1 MiB WRITE
// and its header fit.
const bigRecord = 1<<20 + 64<<10

// records holds buffers for large records (WRITEs), so that each one is
// not a fresh, zeroed megabyte. A record goes back (and its bytes to the
// budget) when its procedure returns, before the reply is written: a
// procedure keeps no slice of its arguments past its return (the state
// machine's commands are encoded before it returns), and the results keep
// only slices the procedure made (a READ's data).
var records = sync.Pool{New: func() any { b := make([]byte, bigRecord); return &b }}

type conn struct {
	c      net.Conn
	remote netip.AddrPort
	local  netip.AddrPort
	server *Server
	sem    chan struct{}
	wmu    sync.Mutex

	share      *weighted // this connection's bytes in flight
	done       chan struct{}
	closeOnce  sync.Once
	readStall  atomic.Int64 // see stalledSince
	writeStall atomic.Int64
	chunk      net.Buffers // write's, reused under wmu
}

// close closes the connection and wakes whatever waits on its behalf.
func (cn *conn) close() {
	cn.closeOnce.Do(func() {
		close(cn.done)
		_ = cn.c.Close()
	})
}

func (cn *conn) handle(ic *inCall) {
	defer ic.finish(cn) // after the reply and the AfterReply functions
	rec := ic.rec
	xid := uint32(0)
	if len(rec) >= 4 {
		xid = binary.BigEndian.Uint32(rec)
	}
	defer func() {
		// A bug in one procedure must not take the node down with it.
		if p := recover(); p != nil {
			log := cn.server.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("rpc: procedure panicked", "xid", xid, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			cn.reply(ic, accepted(xid, &rpcv2.AcceptedReplyData_default{Stat: rpcv2.SYSTEM_ERR}), nil)
		}
	}()
	rd := &recordReader{b: rec}
	var msg rpcv2.RpcMsg
	if _, err := msg.ReadFrom(rd); err != nil {
		return // not even a call header: nothing to answer
	}
	body, ok := msg.Body.(*rpcv2.RpcMsgBody_CALL)
	if !ok {
		return
	}
	cb := &body.Cbody
	if cb.Rpcvers != 2 {
		cn.reply(ic, denied(msg.Xid, &rpcv2.RejectedReply_RPC_MISMATCH{MismatchInfo: struct {
			Low  uint32
			High uint32
		}{2, 2}}), nil)
		return
	}
	call := &Call{XID: msg.Xid, Prog: cb.Prog, Vers: cb.Vers, Proc: cb.Proc, Remote: cn.remote, Local: cn.local, Flavor: cb.Cred.Flavor}
	switch cb.Cred.Flavor {
	case rpcv2.AUTH_NONE:
	case rpcv2.AUTH_SYS:
		var p rpcv2.AuthsysParms
		if _, err := p.ReadFrom(bytes.NewReader(cb.Cred.Body)); err != nil {
			cn.reply(ic, denied(msg.Xid, &rpcv2.RejectedReply_AUTH_ERROR{Stat: rpcv2.AUTH_BADCRED}), nil)
			return
		}
		call.Sys = &p
	default:
		cn.reply(ic, denied(msg.Xid, &rpcv2.RejectedReply_AUTH_ERROR{Stat: rpcv2.AUTH_REJECTEDCRED}), nil)
		return
	}
	svc, ok := cn.server.Programs[cb.Prog]
	if !ok {
		cn.reply(ic, accepted(msg.Xid, &rpcv2.AcceptedReplyData_default{Stat: rpcv2.PROG_UNAVAIL}), nil)
		return
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), callKey{}, call))
	defer cancel()
	defer func() { // after the reply (deferred calls run last in, first out)
		for _, f := range call.replied {
			f()
		}
	}()
	// The results are encoded after room for the record mark and the
	// reply header, which are filled in then; a READ's data is not copied
	// at all (see results).
	var ret *results
	data, err := svc(ctx, cb.Vers, cb.Proc, rd, func(n int) io.Writer {
		ret = newResults(n)
		return ret
	})
	ic.freeRecord(cn)
	if err != nil {
		stat := rpcv2.GARBAGE_ARGS
		if errors.Is(err, ErrSystem) {
			stat = rpcv2.SYSTEM_ERR
		}
		cn.reply(ic, accepted(msg.Xid, &rpcv2.AcceptedReplyData_default{Stat: stat}), nil)
		return
	}
	if data.GetStat() != rpcv2.SUCCESS || ret == nil {
		cn.reply(ic, accepted(msg.Xid, data), nil)
		return
	}
	cn.replyPrefixed(ic, accepted(msg.Xid, data), ret)
}

// gatherMin is the size from which results keeps a written slice instead
// of copying it.
const gatherMin = 32 << 10

// results collects a reply's encoded results behind replyPrefix free bytes.
// Small writes are copied into one buffer; large ones (a READ's data, which
// go-xdr writes with one Write of the procedure's slice) are kept as they
// are and sent with writev, without a copy. This breaks io.Writer's rule
// that a writer keeps no reference to p, knowingly: the procedures hand the
// encoder slices they never touch again.
type results struct {
	bufs net.Buffers
	cur  []byte
	size int // bytes after the prefix
}

func newResults(n int) *results {
	if n >= gatherMin {
		n = 512
	}
	return &results{cur: make([]byte, replyPrefix, replyPrefix+n)}
}

func (w *results) Write(p []byte) (int, error) {
	w.size += len(p)
	if len(p) < gatherMin {
		w.cur = append(w.cur, p...)
		return len(p), nil
	}
	w.bufs = append(w.bufs, w.cur, p)
	w.cur = nil
	return len(p), nil
}

// AvailableBuffer returns the spare room after the results so far: go-xdr
// appends each integer there instead of allocating its bytes.
func (w *results) AvailableBuffer() []byte { return w.cur[len(w.cur):] }

// segments returns the reply's pieces, the first starting with the prefix.
func (w *results) segments() net.Buffers {
	if len(w.cur) > 0 {
		return append(w.bufs, w.cur)
	}
	return w.bufs
}

// payload returns the results as one slice (for the rare reply whose
// header is not the usual one).
func (w *results) payload() []byte {
	var b []byte
	for i, seg := range w.segments() {
		if i == 0 {
			seg = seg[replyPrefix:]
		}
		b = append(b, seg...)
	}
	return b
}

// replyPrefix is the record mark and the header of an accepted reply with
// an AUTH_NONE verifier and SUCCESS: xid, REPLY, MSG_ACCEPTED, verifier
// flavor and length, accept_stat.
const replyPrefix = 4 + 6*4

// recordReader reads the arguments of a call from its record; opaque data
// (a WRITE's payload, file handles) is handed out as slices of the record
// instead of copies (it implements go-xdr's runtime.Slicer).
type recordReader struct {
	b   []byte
	off int
}

func (r *recordReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// NextSlice returns the next n bytes without copying them.
func (r *recordReader) NextSlice(n int) ([]byte, bool) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, false
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s, true
}

func (r *recordReader) Close() error { return nil }

func accepted(xid uint32, data rpcv2.AcceptedReplyData) *rpcv2.RpcMsg {
	return &rpcv2.RpcMsg{Xid: xid, Body: &rpcv2.RpcMsgBody_REPLY{Rbody: &rpcv2.ReplyBody_MSG_ACCEPTED{
		Areply: rpcv2.AcceptedReply{Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, ReplyData: data}}}}
}

func denied(xid uint32, r rpcv2.RejectedReply) *rpcv2.RpcMsg {
	return &rpcv2.RpcMsg{Xid: xid, Body: &rpcv2.RpcMsgBody_REPLY{Rbody: &rpcv2.ReplyBody_MSG_DENIED{Rreply: r}}}
}

// replyPrefixed writes a reply whose results are in res, behind room for
// the record mark and msg's header.
func (cn *conn) replyPrefixed(ic *inCall, msg *rpcv2.RpcMsg, res *results) {
	var hdr bytes.Buffer
	if _, err := msg.WriteTo(&hdr); err != nil {
		return
	}
	if hdr.Len() != replyPrefix-4 {
		cn.reply(ic, msg, res.payload())
		return
	}
	cn.cover(ic, replyPrefix+res.size)
	segs := res.segments()
	first := segs[0]
	copy(first[4:], hdr.Bytes())
	binary.BigEndian.PutUint32(first, uint32(replyPrefix-4+res.size)|0x80000000)
	cn.write(segs)
}

// reply writes a reply message and its payload as one record.
func (cn *conn) reply(ic *inCall, msg *rpcv2.RpcMsg, payload []byte) {
	n := msg.GetEncodedSizeBytes() + len(payload)
	cn.cover(ic, 4+n)
	buf := bytes.NewBuffer(make([]byte, 4, 4+n))
	if _, err := msg.WriteTo(buf); err != nil {
		return
	}
	buf.Write(payload)
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)|0x80000000)
	cn.write(net.Buffers{b})
}

// cover makes the call's reply reservation cover a reply of n bytes,
// overdrawing the budget if the reply bound was short.
func (cn *conn) cover(ic *inCall, n int) {
	if more := int64(n) - ic.replyBytes; more > 0 {
		cn.overdraw(more)
		ic.replyBytes += more
	}
}

// write sends one record (writev for several pieces), in chunks of at
// most writeChunk bytes, noting when each starts (see stalledSince).
func (cn *conn) write(b net.Buffers) {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	defer cn.writeStall.Store(0)
	_ = cn.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for len(b) > 0 {
		chunk := cn.chunk[:0]
		for n := 0; len(b) > 0 && n < writeChunk; {
			seg := b[0]
			if k := writeChunk - n; len(seg) > k {
				seg, b[0] = seg[:k], seg[k:]
			} else {
				b = b[1:]
			}
			chunk = append(chunk, seg)
			n += len(seg)
		}
		cn.chunk = chunk
		cn.writeStall.Store(time.Now().UnixNano())
		if _, err := chunk.WriteTo(cn.c); err != nil {
			cn.close()
			return
		}
	}
}
