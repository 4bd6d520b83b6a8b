package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
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
func SeedSnapshot(dataDir string, meta json.RawMessage, fill func(stateDir string) error) error {
	var m snapMeta
	if err := json.Unmarshal(meta, &m); err != nil || m.ID == "" || m.Index == 0 {
		return fmt.Errorf("replication: seed: bad snapshot metadata (%v)", err)
	}
	if m.Kind != kindData {
		return errWitnessSnapshot
	}
	dir := filepath.Join(dataDir, "raft", "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("replication: seed: %w", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		return fmt.Errorf("replication: seed: %s already holds snapshots", dir)
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
