package testkit

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
//     (with RST), as a peer that refuses connections;
//   - drop-to-target / drop-from-target: one direction of every connection
//     loses its bytes, the other passes (one-way loss).
//
// Each connection costs two goroutines (one per direction); at most
// MaxProxyConns are open at a time, more are refused. Everything is closed,
// and every goroutine waited for, in t.Cleanup.

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is how a FaultProxy treats its link.
type Mode int32

const (
	Pass Mode = iota
	Blackhole
	Reset
	// DropToTarget loses what the dialler sends to the target and passes
	// what comes back (one-way loss); DropFromTarget the other way round.
	DropToTarget
	DropFromTarget
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case DropToTarget:
		return "drop-to-target"
	case DropFromTarget:
		return "drop-from-target"
	}
	return fmt.Sprintf("mode(%d)", int32(m))
}

// MaxProxyConns bounds the connections (and so goroutines) of one proxy.
const MaxProxyConns = 64

type FaultProxy struct {
	t      testing.TB
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

// NewFaultProxy listens on a free 127.0.0.1 port and forwards to target,
// starting in pass mode.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln := ListenUnused(t)
	p := &FaultProxy{t: t, name: target, target: target, ln: ln, Addr: ln.Addr().String(), conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// SetMode switches the proxy's behaviour for existing and new connections.
func (p *FaultProxy) SetMode(m Mode) {
	old := Mode(p.mode.Swap(int32(m)))
	if old == m {
		return
	}
	p.mu.Lock()
	var doomed []*proxyConn
	for pc := range p.conns {
		// Leaving a blackhole: streams that lost bytes are broken.
		if m == Reset || (m == Pass && (pc.lossy.Load() || !pc.dialled())) {
			doomed = append(doomed, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range doomed {
		pc.close()
	}
}

// Mode returns the current mode.
func (p *FaultProxy) Mode() Mode { return Mode(p.mode.Load()) }

// Stats summarizes the proxy's traffic for a log line.
func (p *FaultProxy) Stats() string {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	return fmt.Sprintf("%s→%s %s: %d conns accepted, %d open, %d refused, %d B forwarded, %d B dropped",
		p.Addr, p.target, p.Mode(), p.accepted.Load(), open, p.refused.Load(), p.forwarded.Load(), p.dropped.Load())
}

func (p *FaultProxy) acceptLoop() {
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
		if p.Mode() == Reset {
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
func (p *FaultProxy) refuse(c net.Conn) {
	p.refused.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// track registers pc, unless the proxy is closed or full.
func (p *FaultProxy) track(pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= MaxProxyConns {
		return false
	}
	p.conns[pc] = struct{}{}
	return true
}

func (p *FaultProxy) untrack(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.close()
}

// serve dials the target (unless blackholed) and pumps both directions; it
// returns when both are done.
func (p *FaultProxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer p.untrack(pc)
	if p.Mode() == Blackhole {
		// A partitioned peer never sees the connection: read and drop until
		// the proxy heals (closing it) or the dialer gives up.
		pc.lossy.Store(true)
		p.pump(pc, pc.client, nil, DropToTarget)
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !pc.setServer(s) {
		return
	}
	if p.Mode() == Reset {
		return
	}
	done := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		p.pump(pc, s, pc.client, DropFromTarget)
		pc.close()
	}()
	p.pump(pc, pc.client, s, DropToTarget)
	pc.close()
	<-done
}

// pump copies src to dst (nil: nowhere) until either fails, dropping what
// arrives while the proxy is blackholed or loses this direction (lossy).
func (p *FaultProxy) pump(pc *proxyConn, src, dst net.Conn, lossy Mode) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if m := p.Mode(); dst == nil || m == Blackhole || m == lossy {
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

func (p *FaultProxy) close() {
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
