package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/types"

	"keel/internal/fsstate"
	"keel/internal/metrics"
)

// DefaultMinFreeBytes is the free space a data disk keeps by default
// (node.min_free_space): room for a new raft log segment (64 MiB,
// preallocated), two memtable flushes of the state (2 × 64 MiB) and the
// metadata both write, so that a node that reaches it can still record its
// own term and finish what it has taken.
const DefaultMinFreeBytes = 256 << 20

// ExitDiskFull is the exit status of a node that stopped because its data
// disk is full (a write of its raft log's term and vote, or of its state's
// manifest, failed with ENOSPC): start it again once there is space.
const ExitDiskFull = 75 // EX_TEMPFAIL

// enospcHold is how long a write that failed with ENOSPC keeps the disk
// reported full after statfs shows room again (on copy-on-write filesystems,
// quotas and thin volumes statfs can show room that writes do not find).
const enospcHold = 10 * time.Second

// DiskState is what a node knows of its data disk's space.
type DiskState struct {
	FreeBytes    uint64 `json:"free_bytes"`
	ReserveBytes uint64 `json:"reserve_bytes"` // node.min_free_space
	// Full: the free space is below the reserve, or a write of the raft log
	// or the state failed with ENOSPC in the last 10 s. A full leader hands
	// its role to a node with room; changes that add data are refused with
	// ENOSPC when fewer than a quorum of voters have room.
	Full   bool      `json:"full"`
	Since  time.Time `json:"since,omitzero"`   // full since
	Reason string    `json:"reason,omitempty"` // why it is full, and what to do
}

// diskGuard watches the data disk's free space and the ENOSPC errors the
// raft log and the state meet.
type diskGuard struct {
	dir     string
	reserve uint64
	free    freeCache
	log     *slog.Logger
	metrics *metrics.Node
	fatal   func(msg string)

	mu      sync.Mutex
	hitAt   time.Time // last ENOSPC of a storage write
	hitWhat string
	full    bool
	since   time.Time
	reason  string
}

func newDiskGuard(cfg Config, log *slog.Logger) *diskGuard {
	g := &diskGuard{dir: cfg.Dir, reserve: cfg.MinFreeBytes, free: freeCache{statfs: cfg.freeSpace, now: time.Now},
		log: log, metrics: cfg.Metrics, fatal: cfg.Fatal}
	if g.reserve == 0 {
		g.reserve = DefaultMinFreeBytes
	}
	if g.free.statfs == nil {
		g.free.statfs = diskFree
	}
	if g.fatal == nil {
		g.fatal = func(msg string) {
			fmt.Fprintln(os.Stderr, msg)
			os.Exit(ExitDiskFull)
		}
	}
	return g
}

// isNoSpace reports whether err says the disk (or a quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// hit records a storage write that failed for want of space.
func (g *diskGuard) hit(what string, err error) {
	if !isNoSpace(err) {
		return
	}
	g.metrics.Errors.WithLabelValues("disk_full").Inc()
	g.mu.Lock()
	first := g.hitAt.IsZero() || time.Since(g.hitAt) > enospcHold
	g.hitAt, g.hitWhat = time.Now(), fmt.Sprintf("%s: %v", what, err)
	g.mu.Unlock()
	if first {
		g.log.Error("data disk full: a write failed for want of space; this node cannot take new entries until space is freed "+
			"(delete other files on the disk or grow it; keel resumes by itself)", "dir", g.dir, "what", what, "err", err)
	}
	g.state() // log the change and set the gauges now
}

// ok records a storage write that succeeded after failures.
func (g *diskGuard) ok() {
	g.mu.Lock()
	g.hitAt = time.Time{}
	g.mu.Unlock()
}

// stop ends the process because a write raft or the state cannot go on
// without failed for want of space. Nothing acknowledged is lost: the raft
// log is synced before anything is acknowledged, and a restart replays it.
func (g *diskGuard) stop(what string, err error) {
	msg := fmt.Sprintf("keel: data disk full: %s failed: %v. This node stops (exit status %d) and the others go on without it; "+
		"free space on the disk of %s (delete other files, grow the disk), then start it again (systemd Restart=always does): "+
		"it catches up from the leader. Nothing acknowledged is lost.", what, err, ExitDiskFull, g.dir)
	g.metrics.Errors.WithLabelValues("disk_full").Inc()
	g.log.Error(msg)
	g.fatal(msg)
}

// state returns the disk's state, logging when it becomes full and when it
// has room again.
func (g *diskGuard) state() DiskState {
	free := g.free.read(g.dir, g.reserve) // proposals add at most a few MiB, well within the cache's slack
	g.mu.Lock()
	defer g.mu.Unlock()
	st := DiskState{FreeBytes: free, ReserveBytes: g.reserve}
	recent := !g.hitAt.IsZero() && time.Since(g.hitAt) < enospcHold
	switch {
	case free < g.reserve:
		st.Full = true
		st.Reason = fmt.Sprintf("%s free on the data disk is below the %s reserve (node.min_free_space): "+
			"delete other files on the disk or grow it; changes that add data resume by themselves", sizeText(free), sizeText(g.reserve))
	case recent:
		st.Full = true
		st.Reason = fmt.Sprintf("a write found no space (%s): delete other files on the disk or grow it", g.hitWhat)
	}
	switch {
	case st.Full && !g.full:
		g.full, g.since, g.reason = true, time.Now(), st.Reason
		g.log.Error("data disk full", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve, "reason", st.Reason)
	case !st.Full && g.full:
		g.log.Info("data disk has room again", "dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve,
			"full_for", time.Since(g.since).Round(time.Second).String())
		g.full, g.since, g.reason = false, time.Time{}, ""
	}
	if g.full {
		st.Since = g.since
	}
	g.metrics.DiskFree.Set(float64(free))
	if st.Full {
		g.metrics.DiskFull.Set(1)
	} else {
		g.metrics.DiskFull.Set(0)
	}
	return st
}

func sizeText(b uint64) string {
	switch {
	case b >= 10<<30:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 10<<20:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 10<<10:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d bytes", b)
}

// errLogStore marks a failure of this node's raft log write. On a leader
// raft steps down when it happens, and the change was not made (raft
// appends locally before it sends), but to a caller it is a lost
// leadership; a follower refuses the entries and the leader resends them.
var errLogStore = errors.New("replication: this node could not write its raft log")

// guardedLogs is the raft log as raft sees it, in two layers around raft's
// LogCache (which keeps only the text of the errors it passes on): the inner
// one reports write failures for want of space to the guard, the outer one
// marks every write failure with errLogStore.
type guardedLogs struct {
	raft.LogStore
	g     *diskGuard
	outer bool
}

func (l *guardedLogs) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// IsMonotonic passes raft-wal's answer on: raft then drops the whole log
// after installing a snapshot, as raft-wal requires.
func (l *guardedLogs) IsMonotonic() bool {
	m, ok := l.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (l *guardedLogs) StoreLogs(logs []*raft.Log) error {
	err := l.LogStore.StoreLogs(logs)
	switch {
	case err == nil:
		if !l.outer {
			l.g.ok()
		}
		return nil
	case l.outer:
		return fmt.Errorf("%w: %w", errLogStore, err)
	default:
		l.g.hit("raft log", err)
		if isSealed(err) {
			l.g.stop("writing the raft log (a new segment could not be made, and the log takes no more entries until keel restarts)", err)
		}
		return err
	}
}

// guardedStable is raft's term and vote store. raft panics when it cannot
// save them; for want of space this stops the node with a clear message
// instead.
type guardedStable struct {
	raft.StableStore
	g *diskGuard
}

func (s *guardedStable) Set(key, val []byte) error {
	err := s.StableStore.Set(key, val)
	if err != nil && isNoSpace(err) {
		s.g.stop(fmt.Sprintf("saving raft's %s", key), err)
	}
	return err
}

func (s *guardedStable) SetUint64(key []byte, val uint64) error {
	err := s.StableStore.SetUint64(key, val)
	if err != nil && isNoSpace(err) {
		s.g.stop(fmt.Sprintf("saving raft's %s", key), err)
	}
	return err
}

// isSealed reports raft-wal's answer once a new segment could not be made
// (a failed rotation leaves the tail sealed until the log is reopened).
func isSealed(err error) bool { return errors.Is(err, types.ErrSealed) }

// SetPeerDiskFull records what a peer last said of its data disk (the node
// layer asks the peers while this node leads). Full reports count for 5 s.
func (n *Node) SetPeerDiskFull(id string, full bool) {
	n.peerDiskMu.Lock()
	defer n.peerDiskMu.Unlock()
	if n.peerDisk == nil {
		n.peerDisk = map[string]time.Time{}
	}
	if full {
		n.peerDisk[id] = time.Now()
	} else {
		delete(n.peerDisk, id)
	}
}

func (n *Node) peerFull(id string) bool {
	n.peerDiskMu.Lock()
	defer n.peerDiskMu.Unlock()
	at, ok := n.peerDisk[id]
	return ok && time.Since(at) < 5*time.Second
}

// Disk returns what this node knows of its data disk.
func (n *Node) Disk() DiskState { return n.guard.state() }

// ErrDiskFull says the leader's data disk is nearly full; it wraps
// syscall.ENOSPC so that callers answer with "no space".
var ErrDiskFull = fmt.Errorf("replication: the leader's data disk is nearly full and no other node has room to take over; free space on it (delete files, snapshots, or grow the disk): %w", syscall.ENOSPC)

// ErrQuorumDiskFull says too few voters have room on their disks to
// commit a change that adds data; it wraps syscall.ENOSPC.
var ErrQuorumDiskFull = fmt.Errorf("replication: fewer than a quorum of nodes have room on their data disks; free space on them (`keel status` names them): %w", syscall.ENOSPC)

// checkSpace refuses changes that add data, before they reach the log, when
// they would not fit: this node's disk is below its reserve (the raft log
// and the state need room for their own bookkeeping), or fewer than a
// quorum of voters have room. A full leader first gives its role to a node
// with room: the caller is told to retry (NotLeaderError), and a tunnel or
// NFS client then finds the new leader. Removals, which free space, and
// every other change still go through.
func (n *Node) checkSpace(cmds []*fsstate.Command) error {
	adds := false
	var size uint64
	for _, c := range cmds {
		switch c.Op {
		case fsstate.OpWrite, fsstate.OpCreate, fsstate.OpLink, fsstate.OpCreateVolume:
			adds = true
		}
		size += uint64(len(c.Data))
	}
	if !adds {
		return nil
	}
	st := n.guard.state()
	if st.Full || st.FreeBytes < st.ReserveBytes+size {
		select {
		case n.handoff <- struct{}{}:
		default:
		}
		if n.roomElsewhere() {
			return &NotLeaderError{}
		}
		n.metrics.Errors.WithLabelValues("disk_full").Inc()
		return ErrDiskFull
	}
	voters, full := 0, 0
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) != n.cfg.ID && n.peerFull(string(s.ID)) {
			full++
		}
	}
	if voters-full < voters/2+1 {
		n.metrics.Errors.WithLabelValues("disk_full").Inc()
		return ErrQuorumDiskFull
	}
	return nil
}

// roomElsewhere reports whether a data node other than this one may take
// the leader's role: one the peer checks have not found full. The node
// layer's PickTransferTarget makes the real choice.
func (n *Node) roomElsewhere() bool {
	if n.cfg.PickTransferTarget == nil {
		return false
	}
	for _, p := range n.addrs.get() {
		if p.ID != n.cfg.ID && p.Role == RoleData && !n.peerFull(p.ID) {
			return true
		}
	}
	return false
}

// watchDisk keeps the disk gauges fresh and, while this node leads with a
// full disk, hands its role to a data node with room. A full leader whose
// state cannot apply what is committed (its state machine waits for space)
// and that cannot hand over stops, so that a node with room is elected
// rather than every client waiting on it.
func (n *Node) watchDisk() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastTry, stuckSince time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.handoff:
		}
		st := n.guard.state()
		if !st.Full || n.raft.State() != raft.Leader {
			stuckSince = time.Time{}
			continue
		}
		if n.data != nil && n.raft.CommitIndex() > n.data.applied.get() {
			if stuckSince.IsZero() {
				stuckSince = time.Now()
			} else if time.Since(stuckSince) > 15*time.Second {
				n.guard.stop("applying committed entries to the state (it waits for space to flush)",
					fmt.Errorf("applied index %d behind commit index %d for %v: %w", n.data.applied.get(), n.raft.CommitIndex(),
						time.Since(stuckSince).Round(time.Second), syscall.ENOSPC))
			}
		} else {
			stuckSince = time.Time{}
		}
		if time.Since(lastTry) < 3*time.Second || n.cfg.PickTransferTarget == nil {
			continue
		}
		lastTry = time.Now()
		id, addr, ok := n.cfg.PickTransferTarget()
		if !ok {
			continue
		}
		n.log.Warn("data disk full: handing the leader's role to a node with room", "to", id, "reason", st.Reason)
		go func() {
			if err := n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error(); err != nil {
				n.log.Warn("hand-over from a full disk failed; will retry", "to", id, "err", err)
			}
		}()
	}
}
