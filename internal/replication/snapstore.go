package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"keel/internal/metrics"
)

// snapStore is a raft.SnapshotStore whose snapshots are directories holding a
// Pebble checkpoint of the state (hard links to the immutable SST files), so
// taking one costs a memtable flush, not a copy of the state.
//
// A snapshot leaves a node only as a stream (InstallSnapshot to a follower
// that is too far behind for the log); see stream.go for its format.
type snapStore struct {
	dir    string
	retain int
	mu     sync.Mutex
	seq    int
	reapMu sync.Mutex // held by reap, and by pin while it links a snapshot

	// Set once after newSnapStore, before raft starts; both may be nil.
	log     *slog.Logger
	metrics *metrics.Node

	instMu  sync.Mutex
	install *InstallProgress // the install in progress, if any
}

// InstallProgress is a leader's snapshot being installed on this node.
type InstallProgress struct {
	Phase         string    `json:"phase"` // receive (the stream) | restore (replacing the state)
	SnapshotIndex uint64    `json:"snapshot_index"`
	ReceivedBytes int64     `json:"received_bytes"`
	Since         time.Time `json:"since"`
}

// installing returns a copy of the install in progress, or nil.
func (s *snapStore) installing() *InstallProgress {
	s.instMu.Lock()
	defer s.instMu.Unlock()
	if s.install == nil {
		return nil
	}
	p := *s.install
	return &p
}

// setInstall records the phase of the install in progress ("" when none);
// keel_raft_snapshot_install_in_progress{phase} follows it.
func (s *snapStore) setInstall(phase string, index uint64, received int64) {
	s.instMu.Lock()
	defer s.instMu.Unlock()
	was := ""
	if s.install != nil {
		was = s.install.Phase
	}
	switch {
	case phase == "":
		s.install = nil
	case was != phase:
		s.install = &InstallProgress{Phase: phase, SnapshotIndex: index, ReceivedBytes: received, Since: time.Now()}
	default:
		s.install.ReceivedBytes = received
	}
	if m := s.metrics; m != nil && was != phase {
		if was != "" {
			m.SnapshotInstalling.WithLabelValues(was).Set(0)
		}
		if phase != "" {
			m.SnapshotInstalling.WithLabelValues(phase).Set(1)
		}
	}
}

const (
	metaFile = "meta.json"
	stateDir = "state"
)

var (
	errWitnessSnapshot = errors.New("replication: snapshot comes from a witness and holds no state")
	errBadSnapshot     = errors.New("replication: malformed snapshot stream")
)

type snapMeta struct {
	raft.SnapshotMeta
	Kind byte `json:"kind"`
}

func newSnapStore(dir string, retain int) (*snapStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("replication: snapshot dir: %w", err)
	}
	// Remove leftovers of snapshots interrupted by a crash.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), "pending-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &snapStore{dir: dir, retain: retain}, nil
}

// pendingDir returns a fresh directory name for a checkpoint that an FSM
// snapshot will later hand to a sink.
func (s *snapStore) pendingDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return filepath.Join(s.dir, fmt.Sprintf("pending-%d-%d", time.Now().UnixNano(), s.seq))
}

// Create starts a new snapshot.
func (s *snapStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(s.dir, id+".tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("replication: create snapshot: %w", err)
	}
	return &snapSink{store: s, id: id, tmp: tmp, meta: snapMeta{SnapshotMeta: raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}}, nil
}

// List returns the snapshots, newest first.
func (s *snapStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.list()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, len(metas))
	for i := range metas {
		out[i] = &metas[i].SnapshotMeta
	}
	return out, nil
}

func (s *snapStore) list() ([]snapMeta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list snapshots: %w", err)
	}
	var metas []snapMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), "pending-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name(), metaFile))
		if err != nil {
			continue
		}
		var m snapMeta
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		a, b := metas[i], metas[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return metas, nil
}

// Open returns a snapshot as a stream.
func (s *snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, metaFile))
	if err != nil {
		return nil, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	var m snapMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s meta: %w", id, err)
	}
	files, size, err := streamPlan(filepath.Join(s.dir, id, stateDir), id)
	if err != nil {
		return nil, nil, err
	}
	m.Size = size
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeStream(pw, m.Kind, id, filepath.Join(s.dir, id, stateDir), files))
	}()
	return &m.SnapshotMeta, pr, nil
}

// stateDirOf returns the directory holding snapshot id's checkpoint.
func (s *snapStore) stateDirOf(id string) string { return filepath.Join(s.dir, id, stateDir) }

// latest returns the newest snapshot's metadata, if any.
func (s *snapStore) latest() (snapMeta, bool) {
	metas, err := s.list()
	if err != nil || len(metas) == 0 {
		return snapMeta{}, false
	}
	return metas[0], true
}

func (s *snapStore) reap() {
	s.reapMu.Lock()
	defer s.reapMu.Unlock()
	metas, err := s.list()
	if err != nil {
		return
	}
	for i := s.retain; i < len(metas); i++ {
		_ = os.RemoveAll(filepath.Join(s.dir, metas[i].ID))
	}
}

// snapSink receives a snapshot either as a checkpoint directory handed over
// by the local state machine (adopt) or as a stream from a leader (Write).
type snapSink struct {
	store *snapStore
	id    string
	tmp   string
	meta  snapMeta

	pw      *io.PipeWriter
	done    chan error
	adopted bool
	closed  bool

	// A stream from a leader (an install): when it started, bytes so far.
	started  time.Time
	received int64
}

func (k *snapSink) ID() string { return k.id }

// adopt moves a checkpoint directory into the snapshot.
func (k *snapSink) adopt(dir string, kind byte) error {
	k.meta.Kind = kind
	if err := os.Rename(dir, filepath.Join(k.tmp, stateDir)); err != nil {
		return fmt.Errorf("replication: adopt checkpoint: %w", err)
	}
	k.adopted = true
	return nil
}

func (k *snapSink) Write(p []byte) (int, error) {
	if k.pw == nil {
		k.installStarted()
		pr, pw := io.Pipe()
		k.pw, k.done = pw, make(chan error, 1)
		go func() {
			err := k.consume(pr)
			pr.CloseWithError(err)
			k.done <- err
		}()
	}
	n, err := k.pw.Write(p)
	k.received += int64(n)
	k.store.setInstall("receive", k.meta.Index, k.received)
	if m := k.store.metrics; m != nil {
		m.SnapshotInstallBytes.Add(float64(n))
	}
	return n, err
}

// installStarted and installEnded mark a leader's snapshot being received,
// in the log and in keel_raft_snapshot_install_in_progress{phase="receive"}.
func (k *snapSink) installStarted() {
	k.started = time.Now()
	k.store.setInstall("receive", k.meta.Index, 0)
	if l := k.store.log; l != nil {
		l.Info("snapshot install started: receiving the leader's snapshot", "snapshot", k.id, "index", k.meta.Index, "term", k.meta.Term)
	}
}

func (k *snapSink) installEnded(err error) {
	if k.started.IsZero() {
		return
	}
	result := "installed"
	if err != nil {
		result = "failed"
		k.store.setInstall("", 0, 0)
	} else {
		// raft restores the state from it next (dataFSM.Restore).
		k.store.setInstall("restore", k.meta.Index, k.received)
	}
	if m := k.store.metrics; m != nil {
		m.SnapshotInstalls.WithLabelValues(result).Inc()
	}
	if l := k.store.log; l != nil {
		args := []any{"snapshot", k.id, "index", k.meta.Index, "bytes", k.received, "seconds", time.Since(k.started).Seconds()}
		if err != nil {
			l.Warn("snapshot install failed; the leader will send it again", append(args, "err", err)...)
		} else {
			l.Info("snapshot install received; restoring the state from it", args...)
		}
	}
}

func (k *snapSink) consume(r io.Reader) error {
	kind, _, err := readStreamHeader(r)
	if err != nil {
		return err
	}
	k.meta.Kind = kind
	dir := filepath.Join(k.tmp, stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if kind == kindWitness {
		dir = ""
	}
	if err := readStreamFiles(r, dir); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

func (k *snapSink) Close() (err error) {
	if k.closed {
		return nil
	}
	k.closed = true
	defer func() { k.installEnded(err) }()
	if k.pw != nil {
		k.pw.Close()
		if err := <-k.done; err != nil {
			_ = os.RemoveAll(k.tmp)
			return err
		}
	} else if !k.adopted {
		_ = os.RemoveAll(k.tmp)
		return fmt.Errorf("%w: empty", errBadSnapshot)
	}
	if err := os.MkdirAll(filepath.Join(k.tmp, stateDir), 0o700); err != nil {
		return err
	}
	_, size, err := streamPlan(filepath.Join(k.tmp, stateDir), k.id)
	if err != nil {
		return err
	}
	k.meta.Size = size
	b, _ := json.Marshal(k.meta)
	if err := writeFileSync(filepath.Join(k.tmp, metaFile), b); err != nil {
		return err
	}
	final := filepath.Join(k.store.dir, k.id)
	if err := os.Rename(k.tmp, final); err != nil {
		return fmt.Errorf("replication: finish snapshot: %w", err)
	}
	syncDir(k.store.dir)
	k.store.reap()
	return nil
}

func (k *snapSink) Cancel() error {
	k.closed = true
	if k.pw != nil {
		k.pw.CloseWithError(errors.New("cancelled"))
		<-k.done
		k.installEnded(errors.New("cancelled"))
	}
	return os.RemoveAll(k.tmp)
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// dirSize sums the sizes of the files in dir (not recursive).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
