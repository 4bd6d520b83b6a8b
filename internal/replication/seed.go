package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// PinnedSnapshot is a copy (hard links) of the newest raft snapshot's
// checkpoint that nothing changes or deletes until Release: what a state
// image backup reads.
type PinnedSnapshot struct {
	Dir   string          // the checkpoint's files
	Index uint64          // raft index the state is at
	Term  uint64          // term of that entry
	Meta  json.RawMessage // the snapshot's metadata (configuration included), for SeedSnapshot
	dir   string
}

// Release deletes the pinned copy.
func (p *PinnedSnapshot) Release() { _ = os.RemoveAll(p.dir) }

// PinSnapshot takes a raft snapshot (unless nothing was applied since the
// last one) and pins it.
func (n *Node) PinSnapshot() (*PinnedSnapshot, error) {
	if n.store == nil {
		return nil, errors.New("replication: a witness holds no state to back up")
	}
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, fmt.Errorf("replication: snapshot: %w", err)
	}
	return n.snaps.pin()
}

// pin hard-links the newest data snapshot into a pending directory (removed
// at the next start if the process dies first).
func (s *snapStore) pin() (*PinnedSnapshot, error) {
	s.reapMu.Lock() // no reap between choosing the snapshot and linking it
	defer s.reapMu.Unlock()
	m, ok := s.latest()
	if !ok || m.Kind != kindData {
		return nil, errors.New("replication: no snapshot of the state to pin")
	}
	meta, err := os.ReadFile(filepath.Join(s.dir, m.ID, metaFile))
	if err != nil {
		return nil, fmt.Errorf("replication: pin snapshot %s: %w", m.ID, err)
	}
	dir := s.pendingDir()
	src := s.stateDirOf(m.ID)
	dst := filepath.Join(dir, stateDir)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		return os.Link(p, filepath.Join(dst, rel))
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("replication: pin snapshot %s: %w", m.ID, err)
	}
	return &PinnedSnapshot{Dir: dst, Index: m.Index, Term: m.Term, Meta: meta, dir: dir}, nil
}

// SeedSnapshot makes the snapshot that meta (a PinnedSnapshot's Meta)
// describes the newest one in data directory dataDir, with fill writing its
// checkpoint files into the directory it is given (which it must create).
// Open then starts from it: the state is restored from the checkpoint and
// raft asks the leader only for the entries after meta's index. Only for a
// data directory without raft state.
//
// With voters nil the snapshot keeps the raft configuration it recorded
// (a node rebuilt in its own cluster). Otherwise the configuration becomes
// voters: a new cluster made from another's state image, every data node
// seeded from the same image with the same voters. Either way the node's
// current term starts at the snapshot's, so that no entry it later takes
// can carry a lower term than the ones the snapshot holds.
func SeedSnapshot(dataDir string, meta json.RawMessage, voters []Peer, fill func(stateDir string) error) error {
	var m snapMeta
	if err := json.Unmarshal(meta, &m); err != nil || m.ID == "" || m.Index == 0 {
		return fmt.Errorf("replication: seed: bad snapshot metadata (%v)", err)
	}
	if m.Kind != kindData {
		return errWitnessSnapshot
	}
	if voters != nil {
		var servers []raft.Server
		for _, p := range voters {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		m.Configuration, m.ConfigurationIndex = raft.Configuration{Servers: servers}, m.Index
	}

	dir := filepath.Join(dataDir, "raft", "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("replication: seed: %w", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		return fmt.Errorf("replication: seed: %s already holds snapshots", dir)
	}
	if err := setCurrentTerm(filepath.Join(dataDir, "raft"), m.Term); err != nil {
		return err
	}
	tmp := filepath.Join(dir, m.ID+".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("replication: seed: %w", err)
	}
	if err := fill(filepath.Join(tmp, stateDir)); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	_, size, err := streamPlan(filepath.Join(tmp, stateDir), m.ID)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	m.Size = size
	b, _ := json.Marshal(m)
	if err := writeFileSync(filepath.Join(tmp, metaFile), b); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, m.ID)); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("replication: seed: %w", err)
	}
	syncDir(dir)
	return nil
}

// setCurrentTerm writes raft's current term into a new node's stable store
// (raft-wal's meta database), as Open will find it.
func setCurrentTerm(raftDir string, term uint64) error {
	if err := os.MkdirAll(filepath.Join(raftDir, "wal"), 0o700); err != nil {
		return fmt.Errorf("replication: seed: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(raftDir, "wal"), wal.WithMetaStore(meta))
	if err != nil {
		return fmt.Errorf("replication: seed: open raft log: %w", err)
	}
	defer meta.Close()
	defer w.Close()
	if last, err := w.LastIndex(); err != nil || last != 0 {
		return fmt.Errorf("replication: seed: the raft log already holds entries (last index %d, %v)", last, err)
	}
	if err := w.SetUint64([]byte("CurrentTerm"), term); err != nil {
		return fmt.Errorf("replication: seed: set the current term: %w", err)
	}
	return nil
}
