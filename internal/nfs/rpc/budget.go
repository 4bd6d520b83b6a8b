package rpc

import (
	"container/list"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Memory bounds. Every call in flight holds bytes: its request record
// (from when the server starts reading its body into memory until the
// procedure returns) and a reservation for its reply (from when the call is
// dispatched until the reply has been written, or given up on). They are
// charged to the connection's share and then to the server-wide budget
// before the memory is taken; a connection that cannot get them waits, and
// does not read its socket meanwhile (TCP backpressure), so a client that
// sends faster than the server answers, or never reads its replies, holds
// at most its share, and all connections together at most the budget.
const (
	DefaultMaxInFlightBytes = 256 << 20
	// A connection's share is by default a sixteenth of the budget (16 MiB
	// of 256 MiB: 15 READs of 1 MiB in flight), at least what one call
	// needs.
	// MinConnInFlightBytes is the least share that holds the largest call:
	// a record of DefaultMaxRecord and a reply of MaxReplyBound.
	MinConnInFlightBytes = 4 << 20
	// MaxReplyBound is the reply reservation of a call whose reply size
	// ReplyBound does not know (an NFS READ of 1 MiB and its header fit).
	MaxReplyBound = 1<<20 + 4<<10
	// DefaultStallTimeout: while a connection waits for the server-wide
	// budget, a connection that holds part of it and whose peer has taken
	// longer than this to take a writeChunk of a reply, or to finish
	// sending a record the server holds memory for, is closed (a client reconnects and retransmits; the duplicate
	// request cache answers what was done).
	DefaultStallTimeout = 5 * time.Second
)

// writeChunk is the most bytes written in one system call, so that a
// reply's progress (and a peer that stopped reading) shows between them.
const writeChunk = 256 << 10

// Metrics are the server's memory accounting collectors; nil fields are
// not updated.
type Metrics struct {
	InFlightBytes prometheus.Gauge       // bytes charged to the server-wide budget now
	Waits         *prometheus.CounterVec // by limit: "server" or "connection": a call waited for bytes
	StalledClosed prometheus.Counter     // connections closed for holding budget while their peer stalled
}

// weighted is a semaphore of bytes, first come first served (as
// golang.org/x/sync/semaphore), that can also be overdrawn: a reply larger
// than its reservation is charged without waiting (waiting there could
// deadlock), and later callers wait the longer.
type weighted struct {
	limit   int64
	held    atomic.Int64
	mu      sync.Mutex
	waiters list.List // of *waiter, oldest first
}

type waiter struct {
	n     int64
	ready chan struct{}
}

var errConnClosed = errors.New("rpc: connection closed while waiting for memory")

// tryAcquire takes n bytes if they are free and nobody waits before.
func (w *weighted) tryAcquire(n int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiters.Len() == 0 && w.held.Load()+n <= w.limit {
		w.held.Add(n)
		return true
	}
	return false
}

// acquire takes n bytes (at most the limit: callers clamp), waiting in
// turn until they are free or done is closed. While it waits it calls
// impatient, if set, every tick.
func (w *weighted) acquire(n int64, done <-chan struct{}, tick time.Duration, impatient func()) error {
	w.mu.Lock()
	if w.waiters.Len() == 0 && w.held.Load()+n <= w.limit {
		w.held.Add(n)
		w.mu.Unlock()
		return nil
	}
	wt := &waiter{n: n, ready: make(chan struct{})}
	elem := w.waiters.PushBack(wt)
	w.mu.Unlock()
	var tc <-chan time.Time
	if impatient != nil && tick > 0 {
		t := time.NewTicker(tick)
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case <-wt.ready:
			return nil
		case <-tc:
			impatient()
		case <-done:
			w.mu.Lock()
			select {
			case <-wt.ready: // granted meanwhile: give it back
				w.held.Add(-n)
				w.notify()
			default:
				front := w.waiters.Front() == elem
				w.waiters.Remove(elem)
				if front {
					w.notify()
				}
			}
			w.mu.Unlock()
			return errConnClosed
		}
	}
}

// force takes n bytes whether or not they are free.
func (w *weighted) force(n int64) { w.held.Add(n) }

func (w *weighted) release(n int64) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.held.Add(-n)
	w.notify()
	w.mu.Unlock()
}

// notify grants waiters in order while the oldest fits. w.mu is held.
func (w *weighted) notify() {
	for {
		e := w.waiters.Front()
		if e == nil {
			return
		}
		wt := e.Value.(*waiter)
		if w.held.Load()+wt.n > w.limit {
			return
		}
		w.held.Add(wt.n)
		w.waiters.Remove(e)
		close(wt.ready)
	}
}

// budget returns the server-wide budget, made on first use from the
// configured limits.
func (s *Server) budget() *weighted {
	s.budgetOnce.Do(func() {
		limit := s.MaxInFlightBytes
		if limit <= 0 {
			limit = DefaultMaxInFlightBytes
		}
		s.bytes = &weighted{limit: limit}
	})
	return s.bytes
}

// connLimit is one connection's share: at least what its largest call
// holds (a record of maxRecord and the largest reply reservation), and the
// budget is at least that too.
func (s *Server) connLimit(maxRecord int) int64 {
	limit := s.MaxConnInFlightBytes
	b := s.budget()
	if limit <= 0 {
		limit = b.limit / 16 // 256 MiB: 16 MiB
	}
	largest := int64(max(maxRecord, bigRecord)) + MaxReplyBound
	b.mu.Lock()
	defer b.mu.Unlock()
	limit = max(min(limit, b.limit), largest)
	b.limit = max(b.limit, limit) // only a budget set below one call's needs
	return limit
}

func (s *Server) stallTimeout() time.Duration {
	if s.StallTimeout > 0 {
		return s.StallTimeout
	}
	return DefaultStallTimeout
}

// InFlightBytes reports the bytes charged to the server-wide budget.
func (s *Server) InFlightBytes() int64 { return s.budget().held.Load() }

// InFlightLimit reports the server-wide budget.
func (s *Server) InFlightLimit() int64 {
	b := s.budget()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit
}

func (s *Server) countWait(limit string) {
	if s.Metrics != nil && s.Metrics.Waits != nil {
		s.Metrics.Waits.WithLabelValues(limit).Inc()
	}
}

func (s *Server) gauge(delta int64) {
	if s.Metrics != nil && s.Metrics.InFlightBytes != nil {
		s.Metrics.InFlightBytes.Add(float64(delta))
	}
}

// charge takes n bytes from the connection's share, then from the
// server's budget, waiting for each in turn (and reading nothing from the
// connection meanwhile). It fails only when the connection is closed.
func (cn *conn) charge(n int64) error {
	if n <= 0 {
		return nil
	}
	s := cn.server
	n = min(n, cn.share.limit)
	if !cn.share.tryAcquire(n) {
		s.countWait("connection")
		if err := cn.share.acquire(n, cn.done, 0, nil); err != nil {
			return err
		}
	}
	b := s.budget()
	if !b.tryAcquire(n) {
		s.countWait("server")
		grace := s.stallTimeout()
		if err := b.acquire(n, cn.done, grace/4, s.closeStalled); err != nil {
			cn.share.release(n)
			return err
		}
	}
	s.gauge(n)
	return nil
}

// overdraw charges n bytes without waiting (a reply larger than its
// reservation).
func (cn *conn) overdraw(n int64) {
	if n <= 0 {
		return
	}
	cn.share.force(n)
	cn.server.budget().force(n)
	cn.server.gauge(n)
}

// uncharge gives back what charge or overdraw took.
func (cn *conn) uncharge(n int64) {
	if n <= 0 {
		return
	}
	cn.share.release(n)
	cn.server.budget().release(n)
	cn.server.gauge(-n)
}

// stalledSince is when the peer last made progress on what this
// connection waits for from it (the next bytes of a record the server
// holds memory for, or taking a chunk of a reply), in Unix nanoseconds; 0
// if it waits for nothing.
func (cn *conn) stalledSince() int64 {
	r, w := cn.readStall.Load(), cn.writeStall.Load()
	switch {
	case r == 0:
		return w
	case w == 0:
		return r
	}
	return min(r, w)
}

// closeStalled, called while a connection waits for the server-wide
// budget, closes the connections that hold part of it and whose peers have
// stalled for the stall timeout: what they hold goes to those that use it.
// It scans at most every quarter of the timeout.
func (s *Server) closeStalled() {
	grace := s.stallTimeout()
	now := time.Now().UnixNano()
	type victim struct {
		cn    *conn
		since int64
	}
	var victims []victim
	s.mu.Lock()
	if now-s.lastScan < int64(grace/4) {
		s.mu.Unlock()
		return
	}
	s.lastScan = now
	for cn := range s.conns {
		if since := cn.stalledSince(); since != 0 && now-since >= int64(grace) && cn.share.held.Load() > 0 {
			victims = append(victims, victim{cn, since})
		}
	}
	s.mu.Unlock()
	for _, v := range victims {
		cn := v.cn
		s.logger().Warn("rpc: closing a connection whose peer stalled while holding memory others wait for",
			"remote", cn.remote, "held_bytes", cn.share.held.Load(), "stalled", time.Duration(now-v.since).Round(time.Millisecond))
		if s.Metrics != nil && s.Metrics.StalledClosed != nil {
			s.Metrics.StalledClosed.Inc()
		}
		cn.close()
	}
}
