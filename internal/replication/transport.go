package replication

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is a raft.StreamLayer over mutually authenticated TLS. Every
// connection is counted: bytes sent per destination and bytes received in all,
// which is what status and metrics report as replication and catch-up traffic.
type streamLayer struct {
	ln     net.Listener
	client *tls.Config

	accepted   chan net.Conn
	acceptErr  error // set before acceptDone is closed
	acceptDone chan struct{}
	closed     chan struct{}
	closeOnce  sync.Once

	recv atomic.Uint64
	mu   sync.Mutex
	sent map[string]*atomic.Uint64

	onSent func(peer string, n int)
	onRecv func(n int)
}

func newStreamLayer(ln net.Listener, server, client *tls.Config) *streamLayer {
	s := &streamLayer{
		ln:         tls.NewListener(ln, server),
		client:     client,
		sent:       map[string]*atomic.Uint64{},
		accepted:   make(chan net.Conn),
		acceptDone: make(chan struct{}),
		closed:     make(chan struct{}),
	}
	go s.acceptLoop()
	return s
}

// acceptLoop takes inbound raft connections and completes each TLS
// handshake in its own goroutine, so a peer without a certificate from this
// cluster's CA is refused before raft reads a byte from it, and a slow or
// hostile handshake cannot hold up the others.
func (s *streamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.acceptErr = err
			close(s.acceptDone)
			return
		}
		go func(tc *tls.Conn) {
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				_ = tc.Close()
				return
			}
			_ = tc.SetDeadline(time.Time{})
			cc := &countingConn{Conn: tc, read: func(n int) {
				s.recv.Add(uint64(n))
				if s.onRecv != nil {
					s.onRecv(n)
				}
			}}
			select {
			case s.accepted <- cc:
			case <-s.closed:
				_ = tc.Close()
			case <-s.acceptDone:
				_ = tc.Close()
			}
		}(c.(*tls.Conn))
	}
}

// Accept returns the next authenticated inbound connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.acceptDone:
		return nil, s.acceptErr
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.ln.Close()
}
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial connects to a peer's raft address over TLS.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.client}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("replication: dial %s: %w", address, err)
	}
	counter := s.counter(string(address))
	peer := string(address)
	return &countingConn{Conn: c, write: func(n int) {
		counter.Add(uint64(n))
		if s.onSent != nil {
			s.onSent(peer, n)
		}
	}}, nil
}

func (s *streamLayer) counter(addr string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.sent[addr]
	if !ok {
		c = new(atomic.Uint64)
		s.sent[addr] = c
	}
	return c
}

// sentTo returns the bytes sent to a peer address since start.
func (s *streamLayer) sentTo(addr string) uint64 { return s.counter(addr).Load() }

// received returns the bytes received from all peers since start.
func (s *streamLayer) received() uint64 { return s.recv.Load() }

type countingConn struct {
	net.Conn
	read  func(int)
	write func(int)
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.read != nil {
		c.read(n)
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.write != nil {
		c.write(n)
	}
	return n, err
}

var errClosed = errors.New("replication: node is closed")
