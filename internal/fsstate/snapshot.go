package fsstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Checkpoint writes a consistent copy of the state, as of the last applied
// batch, into dir (which must not exist, or be empty). The memtable is
// flushed first, since with the WAL disabled only flushed data is on disk;
// the table and blob files are then hard-linked, so it takes little time and
// space. The volume snapshots go with it, in dir/volsnaps/<vol>/<name>/
// (their table and blob files hard-linked too). It must not run concurrently
// with ApplyBatch or RestoreFrom.
func (s *Store) Checkpoint(dir string) error {
	if s.snapOf != nil {
		return ErrReadOnly
	}
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("fsstate: checkpoint: %w", err)
		}
	}
	if err := db.Flush(); err != nil {
		return fmt.Errorf("fsstate: checkpoint: flush: %w", err)
	}
	if err := db.Checkpoint(dir); err != nil {
		return fmt.Errorf("fsstate: checkpoint into %s: %w", dir, err)
	}
	if err := s.checkpointVolSnaps(db, dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("fsstate: checkpoint volume snapshots into %s: %w", dir, err)
	}
	idx, _, _ := s.Applied()
	s.log.Debug("checkpoint written", "dir", dir, "applied_index", idx)
	return nil
}

// RestoreFrom replaces the whole state with the contents of a checkpoint
// directory (made by Checkpoint, here or on another node). The checkpoint is
// linked (immutable table and blob files) or copied into <dir>/state.new and
// synced, checked by opening it read-only, and only then swapped in by
// renames; Open completes or undoes a swap interrupted by a crash. The
// volume snapshots of the checkpoint (its volsnaps subdirectory) replace the
// local ones the same way: they are staged inside state.new, so they are
// swapped in with it, then moved to <dir>/volsnaps. A checkpoint without
// volume snapshots leaves none here. The checkpoint directory is left as it
// was. Reads racing with RestoreFrom wait for it; it must not run
// concurrently with ApplyBatch or Checkpoint.
func (s *Store) RestoreFrom(checkpointDir string) error {
	if s.snapOf != nil {
		return ErrReadOnly
	}
	nw := filepath.Join(s.dir, stateNewDir)
	if err := os.RemoveAll(nw); err != nil {
		return fmt.Errorf("fsstate: restore: %w", err)
	}
	if err := cloneDir(checkpointDir, nw); err != nil {
		os.RemoveAll(nw)
		return fmt.Errorf("fsstate: restore from %s: %w", checkpointDir, err)
	}
	if err := stageVolSnaps(filepath.Join(checkpointDir, volSnapsDir),
		filepath.Join(nw, volSnapsRestored)); err != nil {
		os.RemoveAll(nw)
		return fmt.Errorf("fsstate: restore volume snapshots from %s: %w", checkpointDir, err)
	}
	check, err := s.openDB(nw, true)
	if err != nil {
		os.RemoveAll(nw)
		return fmt.Errorf("fsstate: restore from %s: %w", checkpointDir, err)
	}
	if err := check.Close(); err != nil {
		os.RemoveAll(nw)
		return fmt.Errorf("fsstate: restore from %s: %w", checkpointDir, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		os.RemoveAll(nw)
		return ErrClosed
	}
	s.closeSnapshots(func(snapID) bool { return true })
	if err := s.db.Close(); err != nil {
		s.log.Warn("closing the replaced state", "err", err)
	}
	s.db = nil
	cur := filepath.Join(s.dir, stateDir)
	old := filepath.Join(s.dir, stateOldDir)
	if err := os.RemoveAll(old); err != nil {
		return s.reopenAfter(fmt.Errorf("fsstate: restore: %w", err))
	}
	if err := os.Rename(cur, old); err != nil {
		return s.reopenAfter(fmt.Errorf("fsstate: restore: %w", err))
	}
	if err := os.Rename(nw, cur); err != nil {
		// Put the old state back; Open would do the same after a crash.
		if rerr := os.Rename(old, cur); rerr != nil {
			return fmt.Errorf("fsstate: restore: %w (and putting the old state back: %v)", err, rerr)
		}
		return s.reopenAfter(fmt.Errorf("fsstate: restore: %w", err))
	}
	if err := syncDir(s.dir); err != nil {
		return s.reopenAfter(err)
	}
	// The restore is committed; Open would finish moving the volume
	// snapshots after a crash.
	if err := s.installRestoredVolSnaps(); err != nil {
		return s.reopenAfter(err)
	}
	if err := s.reopenAfter(nil); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		s.log.Warn("removing the replaced state", "dir", old, "err", err)
	}
	if err := s.cleanVolSnaps(s.db); err != nil {
		s.log.Warn("removing volume snapshots without a record", "err", err)
	}
	idx, term, _ := s.Applied()
	s.log.Info("state restored from checkpoint", "from", checkpointDir,
		"applied_index", idx, "applied_term", term)
	return nil
}

// reopenAfter reopens dir/state after a swap attempt (the caller holds mu)
// and returns cause, or the reopen error if that failed too.
func (s *Store) reopenAfter(cause error) error {
	db, err := s.openDB(filepath.Join(s.dir, stateDir), false)
	if err == nil {
		if err = s.install(db); err != nil {
			db.Close()
		}
	}
	if err != nil {
		s.log.Error("state cannot be reopened; store unusable", "err", err)
		if cause != nil {
			return fmt.Errorf("%w (and reopening the state: %v)", cause, err)
		}
		return err
	}
	return cause
}

// cloneDir fills the new directory dst with the files of src: immutable
// table and blob files are hard-linked (copied across filesystems), others
// (MANIFEST, OPTIONS, …, which Pebble may append to) copied. Everything is
// synced. The volume snapshots subdirectory of a checkpoint is left out (see
// stageVolSnaps), and so is a LOCK file (Pebble's, of a volume snapshot
// opened read-only).
func cloneDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == volSnapsDir && e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", filepath.Join(src, e.Name()))
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if immutableFile(e.Name()) {
			err := os.Link(from, to)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
				return err
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return syncDir(dst)
}

func immutableFile(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Hash returns a SHA-256 over every key and value of the state except the
// applied index record, so that replicas that applied the same commands
// have equal hashes whatever their raft indexes.
func (s *Store) Hash() (sum [32]byte, err error) {
	err = s.view(func(r reader) error {
		h := sha256.New()
		it, err := r.NewIter(nil)
		if err != nil {
			return fmt.Errorf("fsstate: hash: %w", err)
		}
		defer it.Close()
		var lb [binary.MaxVarintLen64]byte
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if bytes.Equal(k, keyApplied) {
				continue
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("fsstate: hash: %w", err)
			}
			h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k)))])
			h.Write(k)
			h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))])
			h.Write(v)
		}
		if err := it.Error(); err != nil {
			return fmt.Errorf("fsstate: hash: %w", err)
		}
		h.Sum(sum[:0])
		return nil
	})
	return sum, err
}
