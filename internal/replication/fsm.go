package replication

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"keel/internal/fsstate"
	"keel/internal/metrics"
)

// dataFSM applies committed entries to the filesystem state in batches: one
// Pebble batch per raft batch, carrying the applied index with the changes.
type dataFSM struct {
	store   *fsstate.Store
	snaps   *snapStore
	metrics *metrics.Node
	applied appliedTracker
	// sinceSnapshot counts entry bytes applied since the last snapshot
	// (snapbytes.go).
	sinceSnapshot atomic.Uint64
}

func (f *dataFSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *dataFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := make([]interface{}, len(logs))
	entries := make([]fsstate.Entry, 0, len(logs))
	pos := make([]int, 0, len(logs))
	var size uint64
	for i, l := range logs {
		size += uint64(len(l.Data))
		if l.Type == raft.LogCommand {
			entries = append(entries, fsstate.Entry{Index: l.Index, Term: l.Term, Data: l.Data})
			pos = append(pos, i)
		}
	}
	if len(entries) > 0 {
		res := f.store.ApplyBatch(entries)
		for j, r := range res {
			out[pos[j]] = r
		}
	}
	if n := len(logs); n > 0 {
		f.applied.set(logs[n-1].Index)
	}
	f.sinceSnapshot.Add(size)
	f.metrics.ApplyLatency.Observe(time.Since(start).Seconds())
	f.metrics.AppliedEntries.Add(float64(len(entries)))
	return out
}

// Snapshot takes a Pebble checkpoint of the state at the current applied
// index. It runs on the FSM goroutine, so no entry is applied meanwhile.
func (f *dataFSM) Snapshot() (raft.FSMSnapshot, error) {
	dir := f.snaps.pendingDir()
	// Snapshot runs on raft's FSM goroutine, between batches: the count
	// restarts exactly at what the checkpoint holds.
	f.sinceSnapshot.Store(0)
	if err := f.store.Checkpoint(dir); err != nil {
		return nil, fmt.Errorf("replication: checkpoint: %w", err)
	}
	f.metrics.SnapshotsTaken.Inc()
	return &dirSnapshot{dir: dir, kind: kindData}, nil
}

// Restore replaces the state with a snapshot: directly from the local
// snapshot directory when the stream is one of ours (no copy), otherwise by
// unpacking the stream a leader sent.
func (f *dataFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	kind, id, err := readStreamHeader(rc)
	if err != nil {
		return err
	}
	if kind != kindData {
		return errWitnessSnapshot
	}
	start := time.Now()
	if f.snaps.installing() == nil { // a local snapshot; a leader's is in phase restore since its stream ended
		f.snaps.setInstall("restore", 0, 0)
	}
	defer f.snaps.setInstall("", 0, 0)
	dir := f.snaps.stateDirOf(id)
	if _, err := os.Stat(dir); err != nil {
		dir = f.snaps.pendingDir()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := readStreamFiles(rc, dir); err != nil {
			return err
		}
	}
	if err := f.store.RestoreFrom(dir); err != nil {
		return fmt.Errorf("replication: restore snapshot %s: %w", id, err)
	}
	idx, _, _ := f.store.Applied()
	f.applied.set(idx)
	f.metrics.SnapshotsTaken.Inc()
	if l := f.snaps.log; l != nil {
		l.Info("state restored from snapshot", "snapshot", id, "applied_index", idx, "seconds", time.Since(start).Seconds())
	}
	return nil
}

// witnessFSM keeps no state: it only follows the applied index so that status
// can report it. Its snapshots are empty and marked as a witness's.
type witnessFSM struct {
	snaps   *snapStore
	applied appliedTracker
	bytes   atomic.Uint64
}

func (w *witnessFSM) Apply(l *raft.Log) interface{} { return w.ApplyBatch([]*raft.Log{l})[0] }

func (w *witnessFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			w.bytes.Add(uint64(len(l.Data)))
		}
	}
	if n := len(logs); n > 0 {
		w.applied.set(logs[n-1].Index)
	}
	return make([]interface{}, len(logs))
}

func (w *witnessFSM) Snapshot() (raft.FSMSnapshot, error) {
	dir := w.snaps.pendingDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &dirSnapshot{dir: dir, kind: kindWitness}, nil
}

func (w *witnessFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	_, err := io.Copy(io.Discard, rc)
	return err
}

// dirSnapshot is a checkpoint directory waiting to be persisted.
type dirSnapshot struct {
	dir  string
	kind byte
}

func (s *dirSnapshot) Persist(sink raft.SnapshotSink) error {
	if k, ok := sink.(*snapSink); ok {
		return k.adopt(s.dir, s.kind)
	}
	files, _, err := streamPlan(s.dir, sink.ID())
	if err != nil {
		return err
	}
	return writeStream(sink, s.kind, sink.ID(), s.dir, files)
}

func (s *dirSnapshot) Release() { _ = os.RemoveAll(s.dir) }

// appliedTracker is the index of the last entry given to the state machine,
// with a way to wait for it to pass a value.
type appliedTracker struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{}
}

func (a *appliedTracker) set(i uint64) {
	a.mu.Lock()
	if i > a.index {
		a.index = i
		if a.ch != nil {
			close(a.ch)
			a.ch = nil
		}
	}
	a.mu.Unlock()
}

func (a *appliedTracker) get() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}

// waitCh returns a channel closed once the index moves past i, or nil if it
// already has.
func (a *appliedTracker) waitCh(i uint64) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.index >= i {
		return nil
	}
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}
