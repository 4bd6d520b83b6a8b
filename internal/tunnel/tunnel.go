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
//
// Two more cases are hidden the same way. A node that is losing (or has just
// lost) the active role answers the calls it still gets with "try again"
// (NFS3ERR_JUKEBOX; for MOUNT, MNT3ERR_SERVERFAULT or a failed EXPORT): the
// tunnel keeps such a call and sends it again, a little later, to whichever
// node is active then, instead of handing the error to a client that would
// fail on it. And an active node that stops answering without closing the
// connection (paused, cut off by a partition) is left as soon as another
// node accepts the tunnel, i.e. is the leader: calls pending for stallAfter
// with no reply make the tunnel look for one.
package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
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

const (
	// retryFor bounds how long a call answered "try again" is kept and
	// resent before that answer goes to the client.
	retryFor = 60 * time.Second
	// stallAfter is how long calls may wait with no reply from the active
	// node before the tunnel asks the other nodes whether one of them is
	// active now; probeEvery spaces those probes.
	stallAfter = time.Second
	probeEvery = 500 * time.Millisecond
	// maxBackoff caps the pause between rounds of looking for the active
	// node: a round is a few dials, and every pause adds to the fail-over
	// time the client sees.
	maxBackoff = 250 * time.Millisecond
	// suspectFor is how long a node that did not answer a dial in time (or
	// stopped answering calls) is tried after the others.
	suspectFor = 10 * time.Second
)

// Tunnel forwards local NFS connections to the active node.
type Tunnel struct {
	peers []config.Peer
	tls   *tls.Config
	log   *slog.Logger

	mu       sync.Mutex
	active   string // admin address of the node we last reached
	activeID string
	since    time.Time
	suspect  map[string]time.Time // admin address → until when it is tried last

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
// the data nodes; nodes under suspicion come last.
func (t *Tunnel) targets() []string {
	t.mu.Lock()
	first := t.active
	t.mu.Unlock()
	all := []string{}
	if first != "" {
		all = append(all, first)
	}
	for _, p := range t.peers {
		if p.Role != config.RoleWitness && p.AdminAddr != first {
			all = append(all, p.AdminAddr)
		}
	}
	var out, last []string
	for _, a := range all {
		if t.isSuspect(a) {
			last = append(last, a)
		} else {
			out = append(out, a)
		}
	}
	return append(out, last...)
}

// markSuspect makes addr be tried after the others for a while.
func (t *Tunnel) markSuspect(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.suspect == nil {
		t.suspect = map[string]time.Time{}
	}
	t.suspect[addr] = time.Now().Add(suspectFor)
}

func (t *Tunnel) isSuspect(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.suspect[addr]
	if ok && time.Now().After(until) {
		delete(t.suspect, addr)
		return false
	}
	return ok
}

// setActive records addr (node id) as the active node.
func (t *Tunnel) setActive(addr, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active != addr {
		t.since = time.Now()
	}
	t.active, t.activeID = addr, id
	delete(t.suspect, addr)
}

// connect finds the active node and opens an RPC stream to it, retrying
// (bounded backoff) until ctx ends. It returns the node's admin address.
func (t *Tunnel) connect(ctx context.Context) (net.Conn, string, error) {
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
			c, id, hint, err := t.dial(ctx, addr, 3*time.Second)
			if err == nil {
				t.setActive(addr, id)
				return c, addr, nil
			}
			if ne := net.Error(nil); (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
				t.markSuspect(addr) // paused or cut off: do not wait for it first again
			}
			if hint != "" && !tried[hint] {
				if t.isSuspect(hint) {
					queue = append(queue, hint)
				} else {
					queue = append([]string{hint}, queue...)
				}
			}
			t.log.Debug("tunnel: node refused", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// probe looks for an active node other than not: it returns the admin
// address and id of a data node that accepts the tunnel now, or "".
func (t *Tunnel) probe(ctx context.Context, not string) (string, string) {
	for _, p := range t.peers {
		if p.Role == config.RoleWitness || p.AdminAddr == not {
			continue
		}
		c, id, _, err := t.dial(ctx, p.AdminAddr, time.Second)
		if err == nil {
			c.Close()
			return p.AdminAddr, id
		}
	}
	return "", ""
}

// dial opens the upgraded stream to one node; a node that is not the
// leader answers 421 with the leader's admin address as a hint.
func (t *Tunnel) dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, string, string, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &tls.Dialer{Config: t.tls}
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, "", "", err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
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

	mu       sync.Mutex
	seq      uint64
	pending  map[uint32]pendingCall // by xid
	up       net.Conn
	upW      *sync.Mutex
	upAddr   string
	progress time.Time // last reply, connect, or call sent with none pending

	cw sync.Mutex // client writes
}

type pendingCall struct {
	seq        uint64
	rec        []byte
	retryUntil time.Time     // set when first answered "try again"
	backoff    time.Duration // before the next resend after "try again"
}

func (t *Tunnel) serveClient(ctx context.Context, c net.Conn) {
	t.clients.Add(1)
	defer t.clients.Add(-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{t: t, client: c, pending: map[uint32]pendingCall{}}
	defer c.Close()
	go s.upstream(ctx)
	go s.watch(ctx)
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
		if len(s.pending) == 0 {
			s.progress = time.Now()
		}
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
		up, addr, err := s.t.connect(ctx)
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
		s.up, s.upW, s.upAddr = up, w, addr
		s.progress = time.Now()
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
// a call no longer pending (answered already, before a resend) is dropped;
// a "try again" is kept from the client, and the call sent again later.
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
		now := time.Now()
		s.mu.Lock()
		s.progress = now
		p, ok := s.pending[xid]
		retry := false
		if ok && tryAgain(p.rec, rec) {
			if p.retryUntil.IsZero() {
				p.retryUntil = now.Add(retryFor)
			}
			if now.Before(p.retryUntil) {
				retry = true
				p.backoff = min(max(2*p.backoff, 50*time.Millisecond), time.Second)
				s.pending[xid] = p
			}
		}
		if ok && !retry {
			delete(s.pending, xid)
			s.t.inflight.Add(-1)
		}
		s.mu.Unlock()
		if retry {
			s.t.resent.Add(1)
			time.AfterFunc(p.backoff, func() { s.resend(xid, p.seq) })
			continue
		}
		if !ok {
			continue
		}
		if err := writeRecord(s.client, &s.cw, rec); err != nil {
			s.client.Close()
			return
		}
	}
}

// resend sends a call answered "try again" once more, to the node active
// now, if it is still pending (a reconnect resends it anyway).
func (s *session) resend(xid uint32, seq uint64) {
	s.mu.Lock()
	p, ok := s.pending[xid]
	up, w := s.up, s.upW
	s.mu.Unlock()
	if !ok || p.seq != seq || up == nil {
		return
	}
	if err := writeRecord(up, w, p.rec); err != nil {
		up.Close()
	}
}

// watch leaves an active node that has stopped answering: when calls have
// waited stallAfter with no reply and another node accepts the tunnel, the
// upstream connection is closed, so that the session reconnects (to that
// node) and resends what is pending.
func (s *session) watch(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastProbe time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		up, addr := s.up, s.upAddr
		stalled := up != nil && len(s.pending) > 0 && time.Since(s.progress) > stallAfter
		s.mu.Unlock()
		if !stalled || time.Since(lastProbe) < probeEvery {
			continue
		}
		lastProbe = time.Now()
		other, id := s.t.probe(ctx, addr)
		if other == "" {
			continue
		}
		s.mu.Lock()
		same := s.up == up
		n := len(s.pending)
		s.mu.Unlock()
		if !same {
			continue
		}
		s.t.log.Warn("tunnel: the active node stopped answering and another node is active; moving to it",
			"from", addr, "to", other, "pending", n)
		s.t.markSuspect(addr)
		s.t.setActive(other, id)
		up.Close()
	}
}

// tryAgain reports whether reply (to call) is keel's "try again", which a
// node answers when it is not (or no longer) the active one: NFS3ERR_JUKEBOX
// from the NFS program, MNT3ERR_SERVERFAULT from MOUNT's MNT, and a failed
// MOUNT EXPORT (GARBAGE_ARGS or SYSTEM_ERR: that procedure has no arguments).
func tryAgain(call, reply []byte) bool {
	be := binary.BigEndian.Uint32
	if len(call) < 24 || len(reply) < 24 {
		return false
	}
	prog, vers, proc := be(call[12:]), be(call[16:]), be(call[20:])
	if be(reply[4:]) != 1 || be(reply[8:]) != 0 { // REPLY, MSG_ACCEPTED
		return false
	}
	verf := be(reply[16:])
	if verf > 400 {
		return false
	}
	off := 20 + int(verf+3)&^3
	if off+4 > len(reply) {
		return false
	}
	accept := be(reply[off:])
	if prog == 100005 && vers == 3 && proc == 5 { // MOUNT EXPORT
		return accept == 4 || accept == 5 // GARBAGE_ARGS, SYSTEM_ERR
	}
	if accept != 0 || off+8 > len(reply) { // not SUCCESS
		return false
	}
	status := be(reply[off+4:])
	switch {
	case prog == 100003 && vers == 3 && proc != 0:
		return status == 10008 // NFS3ERR_JUKEBOX
	case prog == 100005 && vers == 3 && proc == 1:
		return status == 10006 // MNT3ERR_SERVERFAULT
	}
	return false
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
