package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"keel/internal/fsstate"
	"keel/internal/metrics"
)

// Roles.
const (
	RoleData    = "data"
	RoleWitness = "witness"
)

// Peer is a member of the raft group.
type Peer struct {
	ID   string
	Addr string // raft address
	Role string
}

// Config configures a replication node.
type Config struct {
	ID        string
	Role      string
	Dir       string       // data directory: raft/ (log, snapshots) and state/
	Listener  net.Listener // plain TCP listener for raft; wrapped in TLS here
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	Peers     []Peer
	Bootstrap bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	ApplyTimeout       time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	// SnapshotBytes: a data node also snapshots after applying this many
	// bytes of entries (0: DefaultSnapshotBytes), which bounds the log a
	// restart reads (snapbytes.go).
	SnapshotBytes uint64
	TrailingLogs  uint64
	// MinFreeBytes is the free space the data disk must keep: below it the
	// node reports its disk full, a leader hands its role to a node with
	// room or else refuses changes that add data (ENOSPC), while removals,
	// which free space, still go through. 0: DefaultMinFreeBytes.
	MinFreeBytes uint64
	// Fatal ends the process when the node cannot go on for want of space
	// (nil: print msg and exit with ExitDiskFull).
	Fatal func(msg string)

	Logger  *slog.Logger
	Metrics *metrics.Node

	// PickTransferTarget, on a witness, names the data node to hand
	// leadership to (one that is up and furthest along); nil or !ok lets raft
	// choose, which may pick a dead node and cost an election timeout.
	PickTransferTarget func() (id, addr string, ok bool)

	// WALSegmentSize is the raft log's segment size; 0: raft-wal's default
	// (64 MiB). Compaction drops whole segments only.
	WALSegmentSize int
	walSegmentSize int                     // tests: small segments so compaction really drops entries
	freeSpace      func(dir string) uint64 // tests: a fake disk
}

// NotLeaderError says the change was not made because this node is not the
// leader; LeaderID names the leader if one is known.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "replication: not the leader and no leader is known (an election is under way, or no quorum): retry shortly"
	}
	return fmt.Sprintf("replication: not the leader; the leader is %s", e.LeaderID)
}

// ErrUnknownOutcome says leadership was lost while a change was in flight: it
// may or may not have been committed. Callers retry idempotently.
var ErrUnknownOutcome = errors.New("replication: leadership was lost while the change was in flight; it may or may not have been made")

// Node is one member of the raft group.
type Node struct {
	cfg     Config
	log     *slog.Logger
	raft    *raft.Raft
	wal     *wal.WAL
	walMeta *metadb.BoltMetaDB
	trans   *raft.NetworkTransport
	stream  *streamLayer
	snaps   *snapStore
	store   *fsstate.Store // nil on a witness
	data    *dataFSM
	witness *witnessFSM
	metrics *metrics.Node

	guard      *diskGuard
	handoff    chan struct{}
	peerDiskMu sync.Mutex
	peerDisk   map[string]time.Time // peers last seen with a full disk

	readyMu   sync.Mutex
	readyTerm uint64
	freeze    freezeWatch

	vmu      sync.Mutex
	vwait    []chan error
	vrunning bool

	addrs *peerAddrs

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open starts a node: opens (or creates) its log, snapshots and state, and
// joins the raft group, bootstrapping it if configured and new.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewNode()
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "replication"), metrics: cfg.Metrics, stop: make(chan struct{}),
		handoff: make(chan struct{}, 1)}
	n.guard = newDiskGuard(cfg, n.log)
	var ok bool
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()

	raftDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(filepath.Join(raftDir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	// raft-wal's Close leaves its meta store (bbolt, file-locked) open, so
	// keep our own handle on it and close it ourselves.
	n.walMeta = &metadb.BoltMetaDB{}
	segSize := 64 << 20 // raft-wal's default
	if cfg.WALSegmentSize > 0 {
		segSize = cfg.WALSegmentSize
	}
	if cfg.walSegmentSize > 0 {
		segSize = cfg.walSegmentSize
	}
	w, err := wal.Open(filepath.Join(raftDir, "wal"), wal.WithLogger(newHCLogger(n.log, "raft-wal")),
		wal.WithMetaStore(n.walMeta), wal.WithSegmentSize(segSize))
	if err != nil {
		return nil, fmt.Errorf("replication: open raft log: %w", err)
	}
	n.wal = w
	n.snaps, err = newSnapStore(filepath.Join(raftDir, "snapshots"), 2)
	if err != nil {
		return nil, err
	}
	n.snaps.log, n.snaps.metrics = n.log, cfg.Metrics

	var fsm raft.FSM
	if cfg.Role == RoleWitness {
		n.witness = &witnessFSM{snaps: n.snaps}
		fsm = n.witness
	} else {
		st, err := fsstate.OpenWith(cfg.Dir, cfg.Logger, fsstate.DiskHooks{
			NoSpace: func(err error) {
				n.guard.hit("state (Pebble)", err)
				time.Sleep(time.Second) // Pebble retries at once, and again after each failure
			},
			Stop: n.guard.stop,
		})
		if err != nil {
			return nil, fmt.Errorf("replication: open state: %w", err)
		}
		n.store = st
		// The state is flushed at every snapshot; if it is older than the
		// newest snapshot (power loss after log compaction), start from it.
		if m, ok := n.snaps.latest(); ok && m.Kind == kindData {
			if idx, _, _ := st.Applied(); idx < m.Index {
				n.log.Warn("state is older than the newest snapshot; restoring it", "state_index", idx, "snapshot_index", m.Index)
				if err := st.RestoreFrom(n.snaps.stateDirOf(m.ID)); err != nil {
					return nil, fmt.Errorf("replication: restore from snapshot %s: %w", m.ID, err)
				}
			}
		}
		n.data = &dataFSM{store: st, snaps: n.snaps, metrics: cfg.Metrics}
		idx, _, _ := st.Applied()
		n.data.applied.set(idx)
		fsm = n.data
	}

	n.addrs = &peerAddrs{}
	n.addrs.set(cfg.Peers)
	n.stream = newStreamLayer(cfg.Listener, cfg.ServerTLS, cfg.ClientTLS)
	n.stream.onRecv = func(k int) { cfg.Metrics.RaftRecvBytes.Add(float64(k)) }
	n.stream.onSent = func(peer string, k int) { cfg.Metrics.RaftSentBytes.WithLabelValues(peer).Add(float64(k)) }
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		// Peers are dialled at the address this node's own config gives
		// them, not the one recorded in the raft configuration: each node
		// may reach the others by its own route (NAT, a proxy, a test's
		// fault injector).
		ServerAddressProvider: n.addrs,
		Stream:                n.stream,
		MaxPool:               3,
		Timeout:               10 * time.Second,
		Logger:                newHCLogger(n.log, "raft-net"),
		MaxRPCsInFlight:       4,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(n.log, "raft")
	setIf(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setIf(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setIf(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setIf(&rc.CommitTimeout, cfg.CommitTimeout)
	setIf(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = true // the state lives in Pebble; entries after its applied index are replayed
	if cfg.Role == RoleWitness {
		// A witness never compacts its log on its own: a data node that
		// restarts may need any entry after its last snapshot.
		rc.SnapshotThreshold = 1 << 62
		rc.SnapshotInterval = 24 * 365 * time.Hour
	}

	cache, err := raft.NewLogCache(512, &guardedLogs{LogStore: w, g: n.guard})
	if err != nil {
		return nil, fmt.Errorf("replication: log cache: %w", err)
	}
	logs := &guardedLogs{LogStore: cache, g: n.guard, outer: true}
	stable := &guardedStable{StableStore: w, g: n.guard}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, stable, n.snaps)
		if err != nil {
			return nil, fmt.Errorf("replication: %w", err)
		}
		if !has {
			var servers []raft.Server
			for _, p := range cfg.Peers {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			}
			if err := raft.BootstrapCluster(rc, logs, stable, n.snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
				return nil, fmt.Errorf("replication: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, logs, stable, n.snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("replication: start raft: %w", err)
	}
	n.raft = r
	ok = true

	obs := make(chan raft.Observation, 16)
	r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, isLeader := o.Data.(raft.LeaderObservation)
		return isLeader
	}))
	n.wg.Add(3)
	go n.watchDisk()
	go n.watchLeadership(obs)
	go n.watchFreezes()
	if n.data != nil {
		limit := cfg.SnapshotBytes
		if limit == 0 {
			limit = DefaultSnapshotBytes
		}
		n.wg.Add(1)
		go n.watchSnapshotBytes(limit)
	}
	return n, nil
}

func setIf(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// watchLeadership counts leader changes and, on a witness, hands leadership
// to a data node as soon as the witness wins an election.
func (n *Node) watchLeadership(obs chan raft.Observation) {
	defer n.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case o := <-obs:
			lo := o.Data.(raft.LeaderObservation)
			n.metrics.LeaderChanges.Inc()
			n.log.Info("leader changed", "leader", lo.LeaderID, "term", n.raft.CurrentTerm())
		case <-tick.C:
		}
		isLeader := n.raft.State() == raft.Leader
		if isLeader {
			n.metrics.IsLeader.Set(1)
		} else {
			n.metrics.IsLeader.Set(0)
		}
		n.metrics.Term.Set(float64(n.raft.CurrentTerm()))
		if isLeader && n.cfg.Role == RoleWitness {
			n.log.Info("witness won an election; handing leadership to a data node")
			f := n.raft.LeadershipTransfer
			if pick := n.cfg.PickTransferTarget; pick != nil {
				if id, addr, ok := pick(); ok {
					f = func() raft.Future {
						return n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
					}
				}
			}
			if err := f().Error(); err != nil {
				n.log.Warn("leadership transfer from witness failed; will retry", "err", err)
			}
		}
	}
}

// Store returns the filesystem state (nil on a witness).
func (n *Node) Store() *fsstate.Store { return n.store }

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's id and raft address, if known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Raft exposes the raft instance to tests and status.
func (n *Node) Raft() *raft.Raft { return n.raft }

func (n *Node) notLeader() error {
	id, addr := n.Leader()
	if id == n.cfg.ID {
		id, addr = "", ""
	}
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// Apply proposes a command and returns its result once the entry is committed
// on a quorum and applied on this (the leader's) state.
func (n *Node) Apply(ctx context.Context, cmd *fsstate.Command) (fsstate.Result, error) {
	res, err := n.ApplyMany(ctx, []*fsstate.Command{cmd})
	if err != nil {
		return fsstate.Result{}, err
	}
	return res[0], nil
}

// ApplyMany proposes commands in order (they enter the log in that order,
// pipelined, usually in one group commit) and waits until all are committed
// and applied. An error means at least one was not acknowledged.
func (n *Node) ApplyMany(ctx context.Context, cmds []*fsstate.Command) ([]fsstate.Result, error) {
	wait, err := n.ProposeMany(ctx, cmds)
	if err != nil {
		return nil, err
	}
	return wait()
}

// ProposeMany hands commands to raft in order and returns once they are in
// its pipeline (queued for the log, in that order, before anything proposed
// after this returns), without waiting for them to be committed; wait then
// waits until all are committed and applied, as ApplyMany does. An error
// from ProposeMany itself means none of them was proposed.
func (n *Node) ProposeMany(ctx context.Context, cmds []*fsstate.Command) (wait func() ([]fsstate.Result, error), err error) {
	if n.cfg.Role == RoleWitness || n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	timeout := n.cfg.ApplyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := n.checkSpace(cmds); err != nil {
		return nil, err
	}
	start := time.Now()
	futures := make([]raft.ApplyFuture, len(cmds))
	for i, cmd := range cmds {
		futures[i] = n.raft.Apply(cmd.Encode(), timeout)
	}
	return func() ([]fsstate.Result, error) { return n.waitApplied(cmds, futures, start) }, nil
}

func (n *Node) waitApplied(cmds []*fsstate.Command, futures []raft.ApplyFuture, start time.Time) ([]fsstate.Result, error) {
	out := make([]fsstate.Result, len(cmds))
	var firstErr error
	for i, f := range futures {
		if err := f.Error(); err != nil {
			if firstErr == nil {
				firstErr = n.mapErr(err)
			}
			continue
		}
		res, ok := f.Response().(fsstate.Result)
		if !ok {
			if firstErr == nil {
				firstErr = fmt.Errorf("replication: unexpected apply response %T", f.Response())
			}
			continue
		}
		out[i] = res
		if res.Err == 0 && cmds[i].Op == fsstate.OpWrite {
			n.metrics.BytesWritten.Add(float64(len(cmds[i].Data)))
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	n.metrics.CommitLatency.Observe(time.Since(start).Seconds())
	return out, nil
}

func (n *Node) mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, errLogStore):
		return fmt.Errorf("%w (%v)", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return errClosed
	}
	return fmt.Errorf("replication: %w", err)
}

// ReadIndex returns once this node may serve a linearizable read from its
// local state: it is the leader, every entry committed before its term began
// has been applied here (a barrier at the start of each term), and a quorum
// has confirmed its leadership after the read arrived. Writes acknowledged in
// this term were applied here before they were acknowledged, so the local
// state then holds every acknowledged change.
func (n *Node) ReadIndex(ctx context.Context) error {
	start := time.Now()
	if n.cfg.Role == RoleWitness || n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	term := n.raft.CurrentTerm()
	if err := n.ensureReady(ctx, term); err != nil {
		return err
	}
	// The leadership check. A sole voter needs none: no other node can be
	// elected without its vote, nor commit a change it has not appended
	// (etcd's raft answers a single-member ReadIndex at once for the same
	// reason). The configuration read is the latest appended one, so a
	// voter being added is counted before its entry commits.
	switch {
	case n.soleVoter():
		n.metrics.ReadConfirms.WithLabelValues("sole-voter").Inc()
	case n.suspectFreeze():
		n.metrics.ReadConfirms.WithLabelValues("barrier").Inc()
		if err := n.confirmByBarrier(ctx); err != nil { // see freeze.go
			return err
		}
	default:
		n.metrics.ReadConfirms.WithLabelValues("heartbeat").Inc()
		if err := n.verifyLeader(ctx); err != nil {
			return err
		}
	}
	if n.raft.CurrentTerm() != term {
		return n.notLeader()
	}
	n.metrics.ReadIndexWait.Observe(time.Since(start).Seconds())
	return nil
}

func (n *Node) ensureReady(ctx context.Context, term uint64) error {
	n.readyMu.Lock()
	defer n.readyMu.Unlock()
	if n.readyTerm == term {
		return nil
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return n.mapErr(err)
	}
	n.readyTerm = term
	return nil
}

// soleVoter reports whether this node is the only voter of the latest
// (possibly uncommitted) configuration.
func (n *Node) soleVoter() bool {
	voters := 0
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage == raft.Voter {
			if s.ID != raft.ServerID(n.cfg.ID) {
				return false
			}
			voters++
		}
	}
	return voters == 1
}

// verifyLeader coalesces concurrent callers into one VerifyLeader round that
// starts after all of them arrived.
func (n *Node) verifyLeader(ctx context.Context) error {
	ch := make(chan error, 1)
	n.vmu.Lock()
	n.vwait = append(n.vwait, ch)
	if !n.vrunning {
		n.vrunning = true
		go n.runVerify()
	}
	n.vmu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) runVerify() {
	for {
		n.vmu.Lock()
		batch := n.vwait
		n.vwait = nil
		if len(batch) == 0 {
			n.vrunning = false
			n.vmu.Unlock()
			return
		}
		n.vmu.Unlock()
		var err error
		if e := n.raft.VerifyLeader().Error(); e != nil {
			err = n.mapErr(e)
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}

// WaitApplied waits until the local state has applied index i.
func (n *Node) WaitApplied(ctx context.Context, i uint64) error {
	t := n.tracker()
	for {
		ch := t.waitCh(i)
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *Node) tracker() *appliedTracker {
	if n.data != nil {
		return &n.data.applied
	}
	return &n.witness.applied
}

// Transfer hands leadership to another voter (any if id is empty).
func (n *Node) Transfer(id, addr string) error {
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("replication: leadership transfer: %w", err)
	}
	return nil
}

// Snapshot takes a raft snapshot now (compacting the log).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("replication: snapshot: %w", err)
	}
	return nil
}

// Close leaves the group's work to the others and closes every store.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	close(n.stop)
	var err error
	if n.raft != nil {
		err = n.raft.Shutdown().Error()
	}
	n.wg.Wait()
	if n.trans != nil {
		_ = n.trans.Close()
	}
	n.closeStores()
	return err
}

func (n *Node) closeStores() {
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.wal != nil {
		_ = n.wal.Close()
	}
	if n.walMeta != nil {
		_ = n.walMeta.Close()
	}
}
