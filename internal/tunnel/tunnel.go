// Package tunnel is `keel tunnel`, the client side of the seed's VTun
// tunnels: a local NFS endpoint (e.g. 127.0.0.1:2049) on a client machine
// that forwards NFS and MOUNT calls to the cluster's active node over
// mutually authenticated TLS (the client certificate from `keel init`).
//
// The tunnel learns the active node from any reachable node (a node that is
// not the leader answers with the leader's address). Each client connection
// keeps the calls it has sent and not yet had answered; when the active node
// changes the tunnel reconnects to the new one and sends them again, so the
// client sees a pause, not an error. Resending is safe: reads are
// idempotent, and the cluster's replicated duplicate request cache answers a
// resent CREATE, REMOVE, RENAME… from its record instead of doing it twice.
package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/nfs/rpc"
)

// Upgrade is the protocol token the node's /v1/tunnel route accepts.
const Upgrade = "keel-nfs/1"

// Tunnel forwards local NFS connections to the active node.
type Tunnel struct {
	peers []config.Peer
	tls   *tls.Config
	log   *slog.Logger

	mu       sync.Mutex
	active   string // admin address of the node we last reached
	activeID string
	since    time.Time

	reconnects atomic.Int64
	inflight   atomic.Int64
	clients    atomic.Int64
	calls      atomic.Int64
	resent     atomic.Int64
}

// New makes a tunnel to the cluster described by a client config.
func New(peers []config.Peer, tlsConfig *tls.Config, log *slog.Logger) *Tunnel {
	if log == nil {
		log = slog.Default()
	}
	return &Tunnel{peers: peers, tls: tlsConfig, log: log.With("component", "tunnel")}
}

// Status is what `keel tunnel status` shows.
type Status struct {
	ActiveNode string    `json:"active_node"`
	ActiveAddr string    `json:"active_addr"`
	Since      time.Time `json:"since"`
	Clients    int64     `json:"clients"`
	InFlight   int64     `json:"in_flight"`
	Calls      int64     `json:"calls"`
	Reconnects int64     `json:"reconnects"`
	Resent     int64     `json:"resent"`
}

// Status reports the tunnel's state.
func (t *Tunnel) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Status{ActiveNode: t.activeID, ActiveAddr: t.active, Since: t.since, Clients: t.clients.Load(),
		InFlight: t.inflight.Load(), Calls: t.calls.Load(), Reconnects: t.reconnects.Load(), Resent: t.resent.Load()}
}

// Serve accepts NFS client connections until ctx ends or ln closes.
func (t *Tunnel) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go t.serveClient(ctx, c)
	}
}

// targets lists admin addresses to try: the last active node first, then
// the data nodes.
func (t *Tunnel) targets() []string {
	t.mu.Lock()
	first := t.active
	t.mu.Unlock()
	out := []string{}
	if first != "" {
		out = append(out, first)
	}
	for _, p := range t.peers {
		if p.Role != config.RoleWitness && p.AdminAddr != first {
			out = append(out, p.AdminAddr)
		}
	}
	return out
}

// connect finds the active node and opens an RPC stream to it, retrying
// (bounded backoff) until ctx ends.
func (t *Tunnel) connect(ctx context.Context) (net.Conn, error) {
	backoff := 50 * time.Millisecond
	for {
		queue := t.targets()
		tried := map[string]bool{}
		for len(queue) > 0 {
			addr := queue[0]
			queue = queue[1:]
			if tried[addr] {
				continue
			}
			tried[addr] = true
			c, id, hint, err := t.dial(ctx, addr)
			if err == nil {
				t.mu.Lock()
				if t.active != addr {
					t.since = time.Now()
				}
				t.active, t.activeID = addr, id
				t.mu.Unlock()
				return c, nil
			}
			if hint != "" && !tried[hint] {
				queue = append([]string{hint}, queue...)
			}
			t.log.Debug("tunnel: node refused", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// dial opens the upgraded stream to one node; a node that is not the
// leader answers 421 with the leader's admin address as a hint.
func (t *Tunnel) dial(ctx context.Context, addr string) (net.Conn, string, string, error) {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: t.tls}
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, "", "", err
	}
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v1/tunnel", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Upgrade)
	if err := req.Write(nc); err != nil {
		nc.Close()
		return nil, "", "", err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		nc.Close()
		return nil, "", "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		var body cluster.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		nc.Close()
		return nil, "", body.LeaderAdmin, fmt.Errorf("tunnel: %s answered %d: %s", addr, resp.StatusCode, body.Error)
	}
	_ = nc.SetDeadline(time.Time{})
	id := ""
	for _, p := range t.peers {
		if p.AdminAddr == addr {
			id = p.ID
		}
	}
	return &readerConn{Conn: nc, r: br}, id, "", nil
}

type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// session is one local client connection and its calls in flight.
type session struct {
	t      *Tunnel
	client net.Conn

	mu      sync.Mutex
	seq     uint64
	pending map[uint32]pendingCall // by xid
	up      net.Conn
	upW     *sync.Mutex

	cw sync.Mutex // client writes
}

type pendingCall struct {
	seq uint64
	rec []byte
}

func (t *Tunnel) serveClient(ctx context.Context, c net.Conn) {
	t.clients.Add(1)
	defer t.clients.Add(-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{t: t, client: c, pending: map[uint32]pendingCall{}}
	defer c.Close()
	go s.upstream(ctx)
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		rec, err := rpc.ReadRecord(r, rpc.DefaultMaxRecord)
		if err != nil {
			break
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		t.calls.Add(1)
		s.mu.Lock()
		s.seq++
		if _, dup := s.pending[xid]; !dup {
			t.inflight.Add(1)
		}
		s.pending[xid] = pendingCall{seq: s.seq, rec: rec}
		up, w := s.up, s.upW
		s.mu.Unlock()
		if up != nil {
			if err := writeRecord(up, w, rec); err != nil {
				up.Close() // the upstream loop reconnects and resends
			}
		}
	}
	s.mu.Lock()
	t.inflight.Add(-int64(len(s.pending)))
	s.pending = map[uint32]pendingCall{}
	if s.up != nil {
		s.up.Close()
	}
	s.mu.Unlock()
}

// upstream keeps a connection to the active node, resends what is pending
// after each (re)connect, and forwards replies to the client.
func (s *session) upstream(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		up, err := s.t.connect(ctx)
		if err != nil {
			return
		}
		reconnect := !first
		if reconnect {
			s.t.reconnects.Add(1)
		}
		first = false
		w := &sync.Mutex{}
		s.mu.Lock()
		s.up, s.upW = up, w
		calls := make([]pendingCall, 0, len(s.pending))
		for _, p := range s.pending {
			calls = append(calls, p)
		}
		s.mu.Unlock()
		sort.Slice(calls, func(i, j int) bool { return calls[i].seq < calls[j].seq })
		for _, p := range calls {
			if reconnect {
				s.t.resent.Add(1)
			}
			if err := writeRecord(up, w, p.rec); err != nil {
				break
			}
		}
		s.forward(up)
		s.mu.Lock()
		if s.up == up {
			s.up, s.upW = nil, nil
		}
		s.mu.Unlock()
		up.Close()
		if ctx.Err() == nil {
			s.t.log.Info("tunnel: connection to the active node lost; reconnecting", "pending", s.pendingCount())
		}
	}
}

func (s *session) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// forward copies replies from up to the client until up fails. A reply to
// a call no longer pending (answered already, before a resend) is dropped.
func (s *session) forward(up net.Conn) {
	r := bufio.NewReaderSize(up, 64<<10)
	for {
		rec, err := rpc.ReadRecord(r, rpc.DefaultMaxRecord)
		if err != nil {
			return
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		s.mu.Lock()
		_, ok := s.pending[xid]
		if ok {
			delete(s.pending, xid)
			s.t.inflight.Add(-1)
		}
		s.mu.Unlock()
		if !ok {
			continue
		}
		if err := writeRecord(s.client, &s.cw, rec); err != nil {
			s.client.Close()
			return
		}
	}
}

func writeRecord(c net.Conn, mu *sync.Mutex, rec []byte) error {
	b := make([]byte, 4+len(rec))
	binary.BigEndian.PutUint32(b, uint32(len(rec))|0x80000000)
	copy(b[4:], rec)
	mu.Lock()
	defer mu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Write(b)
	return err
}
