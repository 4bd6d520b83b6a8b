package e2e

// A fault-injecting TCP proxy, in the spirit of hashicorp/raft's fuzzy
// transport but between real processes: a test puts one in front of an
// address (a node's raft port) and makes the link behave at will.
//
//   - pass: bytes are forwarded both ways;
//   - blackhole: connections stay open but every byte is silently dropped,
//     both ways, as a network partition does (new connections are accepted
//     and go nowhere: the dialer's TLS handshake times out). Connections
//     that lost bytes carry a broken stream, so they are closed when the
//     proxy goes back to pass; the peers then reconnect on clean ones;
//   - reset: every connection is closed and new ones are closed at once
//     (with RST), as a peer that refuses connections.
//
// Each connection costs two goroutines (one per direction); at most
// maxProxyConns are open at a time, more are refused. Everything is closed,
// and every goroutine waited for, in t.Cleanup.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type faultMode int32

const (
	modePass faultMode = iota
	modeBlackhole
	modeReset
)

func (m faultMode) String() string {
	switch m {
	case modePass:
		return "pass"
	case modeBlackhole:
		return "blackhole"
	case modeReset:
		return "reset"
	}
	return fmt.Sprintf("mode(%d)", int32(m))
}

// maxProxyConns bounds the connections (and so goroutines) of one proxy.
const maxProxyConns = 64

type faultProxy struct {
	t      *testing.T
	name   string
	target string
	ln     net.Listener
	Addr   string // 127.0.0.1:port the proxy listens on

	mode atomic.Int32

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup

	// Counters, for logs.
	accepted  atomic.Int64
	refused   atomic.Int64
	forwarded atomic.Int64 // bytes
	dropped   atomic.Int64 // bytes
}

// proxyConn is one proxied connection: the accepted client side and, unless
// it was accepted while blackholed, the dialled target side.
type proxyConn struct {
	client net.Conn
	lossy  atomic.Bool // bytes were dropped: the stream is broken

	mu     sync.Mutex
	server net.Conn // nil: not dialled (yet), or accepted during a blackhole
	closed bool
}

// setServer attaches the dialled target side; false if pc was closed
// meanwhile (then s is closed too).
func (pc *proxyConn) setServer(s net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		s.Close()
		return false
	}
	pc.server = s
	return true
}

func (pc *proxyConn) dialled() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.server != nil
}

func (pc *proxyConn) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.closed = true
	_ = pc.client.Close()
	if pc.server != nil {
		_ = pc.server.Close()
	}
}

// newFaultProxy listens on a free 127.0.0.1 port and forwards to target,
// starting in pass mode.
func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln := listenUnusedPort(t)
	p := &faultProxy{t: t, name: target, target: target, ln: ln, Addr: ln.Addr().String(), conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// listenUnusedPort listens on 127.0.0.1:0, skipping ports freePorts has
// handed out (a node may not have bound its port yet), and records the port
// so that freePorts never hands it out.
func listenUnusedPort(t *testing.T) net.Listener {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	var skipped []net.Listener
	defer func() {
		for _, l := range skipped {
			l.Close()
		}
	}()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("fault proxy: listen: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if portsUsed[port] {
			skipped = append(skipped, ln) // keep it bound so that the next try gets another
			continue
		}
		portsUsed[port] = true
		return ln
	}
	t.Fatalf("fault proxy: no unused port in 50 tries")
	return nil
}

// SetMode switches the proxy's behaviour for existing and new connections.
func (p *faultProxy) SetMode(m faultMode) {
	old := faultMode(p.mode.Swap(int32(m)))
	if old == m {
		return
	}
	p.mu.Lock()
	var doomed []*proxyConn
	for pc := range p.conns {
		// Leaving a blackhole: streams that lost bytes are broken.
		if m == modeReset || (m == modePass && (pc.lossy.Load() || !pc.dialled())) {
			doomed = append(doomed, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range doomed {
		pc.close()
	}
}

// Mode returns the current mode.
func (p *faultProxy) Mode() faultMode { return faultMode(p.mode.Load()) }

// Stats summarizes the proxy's traffic for a log line.
func (p *faultProxy) Stats() string {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	return fmt.Sprintf("%s→%s %s: %d conns accepted, %d open, %d refused, %d B forwarded, %d B dropped",
		p.Addr, p.target, p.Mode(), p.accepted.Load(), open, p.refused.Load(), p.forwarded.Load(), p.dropped.Load())
}

func (p *faultProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		p.accepted.Add(1)
		if p.Mode() == modeReset {
			p.refuse(c)
			continue
		}
		pc := &proxyConn{client: c}
		if !p.track(pc) {
			p.refuse(c)
			continue
		}
		p.wg.Add(1)
		go p.serve(pc)
	}
}

// refuse closes c with an RST.
func (p *faultProxy) refuse(c net.Conn) {
	p.refused.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// track registers pc, unless the proxy is closed or full.
func (p *faultProxy) track(pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= maxProxyConns {
		return false
	}
	p.conns[pc] = struct{}{}
	return true
}

func (p *faultProxy) untrack(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.close()
}

// serve dials the target (unless blackholed) and pumps both directions; it
// returns when both are done.
func (p *faultProxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer p.untrack(pc)
	if p.Mode() == modeBlackhole {
		// A partitioned peer never sees the connection: read and drop until
		// the proxy heals (closing it) or the dialer gives up.
		pc.lossy.Store(true)
		p.pump(pc, pc.client, nil)
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !pc.setServer(s) {
		return
	}
	if p.Mode() == modeReset {
		return
	}
	done := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		p.pump(pc, s, pc.client)
		pc.close()
	}()
	p.pump(pc, pc.client, s)
	pc.close()
	<-done
}

// pump copies src to dst (nil: nowhere) until either fails, dropping what
// arrives while the proxy is blackholed.
func (p *faultProxy) pump(pc *proxyConn, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if dst == nil || p.Mode() != modePass {
				pc.lossy.Store(true)
				p.dropped.Add(int64(n))
			} else {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				p.forwarded.Add(int64(n))
			}
		}
		if err != nil {
			return // EOF or error: the caller closes both sides
		}
	}
}

func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("fault proxy %s: goroutines still running 10s after close", p.Addr)
	}
}

// TestFaultProxyModes checks the proxy itself against an echo server: pass
// forwards, blackhole swallows bytes both ways without closing anything
// (and hides new connections from the target), healing closes the broken
// streams, reset refuses.
func TestFaultProxyModes(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoConns atomic.Int64
	var ewg sync.WaitGroup
	var emu sync.Mutex
	var open []net.Conn
	ewg.Add(1)
	go func() {
		defer ewg.Done()
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			echoConns.Add(1)
			emu.Lock()
			open = append(open, c)
			emu.Unlock()
			ewg.Add(1)
			go func() {
				defer ewg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		echo.Close()
		emu.Lock()
		for _, c := range open {
			c.Close()
		}
		emu.Unlock()
		ewg.Wait()
	})

	p := newFaultProxy(t, echo.Addr().String())
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			t.Fatalf("dial the proxy: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// roundTrip sends msg and reads the echo: "" if none came in wait, or
	// "closed" if the connection ended.
	roundTrip := func(c net.Conn, msg string, wait time.Duration) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(wait))
		defer c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte(msg)); err != nil {
			return "closed"
		}
		buf := make([]byte, len(msg))
		n, err := io.ReadFull(c, buf)
		var ne net.Error
		switch {
		case err == nil:
			return string(buf[:n])
		case errors.As(err, &ne) && ne.Timeout():
			return ""
		default:
			return "closed"
		}
	}

	a := dial()
	if got := roundTrip(a, "hello", 2*time.Second); got != "hello" {
		t.Fatalf("pass: echo %q, want hello", got)
	}

	p.SetMode(modeBlackhole)
	if got := roundTrip(a, "lost", 300*time.Millisecond); got != "" {
		t.Fatalf("blackhole: an open connection got %q back; want silence", got)
	}
	before := echoConns.Load()
	b := dial() // accepted, but goes nowhere
	if got := roundTrip(b, "lost too", 300*time.Millisecond); got != "" {
		t.Fatalf("blackhole: a new connection got %q back; want silence", got)
	}
	if n := echoConns.Load(); n != before {
		t.Fatalf("blackhole: the target saw %d new connections; want none", n-before)
	}

	p.SetMode(modePass)
	for name, c := range map[string]net.Conn{"the connection that lost bytes": a, "the connection made in the blackhole": b} {
		if got := roundTrip(c, "x", 2*time.Second); got != "closed" {
			t.Errorf("after healing, %s answered %q; want it closed", name, got)
		}
	}
	c := dial()
	if got := roundTrip(c, "again", 2*time.Second); got != "again" {
		t.Fatalf("healed: echo %q, want again", got)
	}

	p.SetMode(modeReset)
	if got := roundTrip(c, "x", 2*time.Second); got != "closed" {
		t.Errorf("reset: an open connection answered %q; want it closed", got)
	}
	if got := roundTrip(dial(), "x", 2*time.Second); got != "closed" {
		t.Errorf("reset: a new connection answered %q; want it refused", got)
	}

	p.SetMode(modePass)
	if got := roundTrip(dial(), "back", 2*time.Second); got != "back" {
		t.Fatalf("pass after reset: echo %q, want back", got)
	}
	t.Log(p.Stats())
}
