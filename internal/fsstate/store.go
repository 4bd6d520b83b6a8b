package fsstate

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is the filesystem state of one raft group, kept in a Pebble database
// in <dir>/state, with its volume snapshots in <dir>/volsnaps. ApplyBatch,
// Checkpoint and RestoreFrom must be serialised by the caller (raft's FSM
// goroutine does that); reads may run concurrently with all of them.
//
// A Store returned by OpenSnapshot is the read-only state of a volume
// snapshot (snapOf is set).
type Store struct {
	dir   string
	log   *slog.Logger
	cache *pebble.Cache

	mu sync.RWMutex // guards db: read-locked for use, write-locked to swap or close
	db *pebble.DB

	amu     sync.Mutex
	applied appliedRec

	// Volume snapshots opened by OpenSnapshot, kept open until deleted or
	// the store closes. smu is taken after mu, never before.
	smu   sync.Mutex
	snaps map[snapID]*Store

	snapOf *Store // on the store of a volume snapshot: the store it belongs to

	disk DiskHooks
}

// DiskHooks tell the store's owner about a full disk. Both may be nil.
type DiskHooks struct {
	// NoSpace is called when a write of the state (a flush, a compaction,
	// its manifest) fails for want of space; Pebble retries the write once
	// the call returns, so it should not return at once.
	NoSpace func(err error)
	// Stop is called instead of panicking when the state cannot go on for
	// want of space (its manifest cannot be written, or an apply fails);
	// it should end the process with a clear message.
	Stop func(what string, err error)
}

const (
	stateDir    = "state"
	stateNewDir = "state.new"
	stateOldDir = "state.old"

	volSnapsDir    = "volsnaps"
	volSnapsOldDir = "volsnaps.old"
	// volSnapsRestored is where RestoreFrom puts the volume snapshots it
	// restores: inside state.new, so that they are swapped in with the
	// state, then moved to volsnaps (installRestoredVolSnaps).
	volSnapsRestored = "volsnaps.restored"

	memTableSize = 64 << 20
	cacheSize    = 64 << 20
)

// Open opens (creating if needed) the store kept in dir/state. It finishes or
// rolls back a RestoreFrom interrupted by a crash, and fails with an error
// wrapping ErrFormat if the directory holds a store in an unknown format.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	return OpenWith(dir, logger, DiskHooks{})
}

// OpenWith is Open with hooks for a full disk.
func OpenWith(dir string, logger *slog.Logger, hooks DiskHooks) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{dir: dir, log: logger.With("component", "fsstate"), disk: hooks}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fsstate: create %s: %w", dir, err)
	}
	if err := s.recoverSwap(); err != nil {
		return nil, err
	}
	if err := s.installRestoredVolSnaps(); err != nil {
		return nil, err
	}
	s.cache = pebble.NewCache(cacheSize)
	db, err := s.openDB(filepath.Join(dir, stateDir), false)
	if err != nil {
		s.cache.Unref()
		return nil, err
	}
	if err := s.install(db); err != nil {
		_ = db.Close()
		s.cache.Unref()
		return nil, err
	}
	if err := s.cleanVolSnaps(db); err != nil {
		_ = db.Close()
		s.cache.Unref()
		return nil, err
	}
	idx, term, _ := s.Applied()
	s.log.Info("state opened", "dir", dir, "applied_index", idx, "applied_term", term)
	return s, nil
}

// recoverSwap completes or undoes a RestoreFrom that a crash interrupted.
// RestoreFrom renames state → state.old only once state.new is complete and
// synced, so a missing state with a state.new present means state.new is
// the one to keep.
func (s *Store) recoverSwap() error {
	cur := filepath.Join(s.dir, stateDir)
	nw := filepath.Join(s.dir, stateNewDir)
	old := filepath.Join(s.dir, stateOldDir)
	if _, err := os.Stat(cur); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(nw); err == nil {
			s.log.Warn("completing an interrupted restore", "dir", s.dir)
			if err := os.Rename(nw, cur); err != nil {
				return fmt.Errorf("fsstate: complete interrupted restore: %w", err)
			}
			if err := syncDir(s.dir); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{nw, old, filepath.Join(s.dir, volSnapsOldDir)} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("fsstate: remove leftover %s: %w", p, err)
		}
	}
	return nil
}

// options returns the Pebble options for the state database.
func (s *Store) options(readOnly bool) *pebble.Options {
	o := &pebble.Options{
		Cache:              s.cache,
		DisableWAL:         true, // the raft log is the WAL
		FormatMajorVersion: pebble.FormatValueSeparation,
		MemTableSize:       memTableSize,
		Logger:             pebbleLogger{s.log, s.disk.Stop},
		ReadOnly:           readOnly,
	}
	if h := s.disk.NoSpace; h != nil && !readOnly {
		o.FS = vfs.OnDiskFull(vfs.Default, func() { h(syscall.ENOSPC) })
	}
	o.Experimental.EnableColumnarBlocks = func() bool { return true }
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1024,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// openDB opens the Pebble database at path and checks its format version; a
// new, empty database is stamped with the current format.
func (s *Store) openDB(path string, readOnly bool) (*pebble.DB, error) {
	db, err := pebble.Open(path, s.options(readOnly))
	if err != nil {
		return nil, fmt.Errorf("fsstate: open %s: %w", path, err)
	}
	if err := checkFormat(db, path, readOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func checkFormat(db *pebble.DB, path string, readOnly bool) error {
	v, closer, err := db.Get(keyFormat)
	switch {
	case err == nil:
		defer closer.Close()
		if len(v) != 1 || v[0] != storeFormat {
			return fmt.Errorf("%w: %s holds format %x, this keel understands %d; "+
				"run a keel release that supports it, or restore the node from a snapshot",
				ErrFormat, path, v, storeFormat)
		}
		return nil
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("fsstate: read format of %s: %w", path, err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("fsstate: open %s: %w", path, err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsstate: open %s: %w", path, err)
	}
	if !empty {
		return fmt.Errorf("%w: %s holds data but no format version; it is not a keel state store",
			ErrFormat, path)
	}
	if readOnly {
		return fmt.Errorf("%w: %s is empty", ErrFormat, path)
	}
	if err := db.Set(keyFormat, []byte{storeFormat}, pebble.NoSync); err != nil {
		return fmt.Errorf("fsstate: initialise %s: %w", path, err)
	}
	if err := db.Flush(); err != nil {
		return fmt.Errorf("fsstate: initialise %s: %w", path, err)
	}
	return nil
}

// install makes db the store's database and loads the applied index from it.
// The caller holds mu for writing, or the store is not shared yet.
func (s *Store) install(db *pebble.DB) error {
	a := appliedRec{}
	v, closer, err := db.Get(keyApplied)
	switch {
	case err == nil:
		a, err = decodeApplied(v)
		closer.Close()
		if err != nil {
			return err
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("fsstate: read applied index: %w", err)
	}
	s.db = db
	s.amu.Lock()
	s.applied = a
	s.amu.Unlock()
	return nil
}

// Applied returns the index and term of the last applied raft entry and the
// total bytes of entry data applied so far.
func (s *Store) Applied() (index, term, bytes uint64) {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.applied.Index, s.applied.Term, s.applied.Bytes
}

// Dir returns the directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

// Close flushes the memtable (the WAL is disabled, so only flushed data
// survives) and closes the database and the volume snapshots opened by
// OpenSnapshot. Reads after Close return ErrClosed. On the store of a volume
// snapshot, which belongs to the store it was opened from, Close does
// nothing.
func (s *Store) Close() error {
	if s.snapOf != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	s.closeSnapshots(func(snapID) bool { return true })
	db := s.db
	s.db = nil
	ferr := db.Flush()
	cerr := db.Close()
	s.cache.Unref()
	if ferr != nil {
		return fmt.Errorf("fsstate: flush on close: %w", ferr)
	}
	if cerr != nil {
		return fmt.Errorf("fsstate: close: %w", cerr)
	}
	return nil
}

// acquire read-locks the database pointer; the caller must call s.mu.RUnlock.
func (s *Store) acquire() (*pebble.DB, error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.db, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsstate: sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsstate: sync %s: %w", dir, err)
	}
	return nil
}

// pebbleLogger sends Pebble's log output to slog.
type pebbleLogger struct {
	l    *slog.Logger
	stop func(what string, err error) // for a fatal error that is a full disk
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble")
	if p.stop != nil && (strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())) {
		p.stop("writing the state (Pebble)", fmt.Errorf("%s: %w", msg, syscall.ENOSPC))
	}
	panic("pebble: " + msg)
}
