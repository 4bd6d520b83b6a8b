package fsstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Volume snapshots (LVM-snapshot parity).
//
// A snapshot of a volume is a Pebble checkpoint of the whole database taken
// when its OpSnapshotCreate entry is applied, in
// <store dir>/volsnaps/<vol>/<name>/, plus a record in the state under
// snapKey(vol, name). ApplyBatch commits the entries before the command
// first and flushes the memtable, so the checkpoint holds exactly the state
// before the entry: every earlier command wholly in, every later one out, on
// every replica alike. The record, written with the entry's applied index,
// comes after the checkpoint: a crash in between leaves a directory without a
// record, which Open removes, and raft applies the entry again. Table and
// blob files are hard links, so a snapshot costs about nothing until the
// live database rewrites them (SnapshotInfo.HeldBytes).
//
// OpVolumeClone and OpVolumeRevert copy a volume's keys out of a snapshot
// (OpenSnapshot) into the live database, renumbered for a clone. A large
// volume is copied in pieces of copyPieceBytes, each committed on its own
// before the entry's applied index is recorded with the last one; a crash
// midway leaves pieces that the replayed entry first deletes (it starts by
// deleting the target key ranges), so the copy is done again from scratch.
// Readers may see a half-copied volume meanwhile (a revert's target, or the
// keys of a clone that has no volume record yet).
//
// OpSnapshotDelete (and OpDeleteVolume, for all of a volume's snapshots)
// deletes the record; once the batch is committed the memtable is flushed,
// so that the deletion is durable, and only then is the directory removed:
// a replayed clone or revert never finds a recorded snapshot gone. A
// directory lost any other way is reported by Snapshots as Missing; a clone
// or revert from it is a storage failure on that replica.

// copyPieceBytes is the size at which a clone or revert commits the piece of
// its copy built so far (a variable for tests).
var copyPieceBytes = 64 << 20

// testHookPiece, when set, runs after each piece of a copy is committed; an
// error it returns fails the apply as a storage failure would (tests).
var testHookPiece func() error

// snapID names a volume snapshot; an empty name means all of the volume's.
type snapID struct {
	vol  uint64
	name string
}

// volSnapDir returns the directory of snapshot id (of all the volume's
// snapshots if id.name is empty).
func (s *Store) volSnapDir(id snapID) string {
	return filepath.Join(s.dir, volSnapsDir, strconv.FormatUint(id.vol, 10), id.name)
}

// snapshot returns the record of snapshot name of volume vol, or ENOENT.
func (t *txn) snapshot(vol uint64, name string) (snapRec, error) {
	b, ok, err := t.get(snapKey(vol, name))
	if err != nil {
		return snapRec{}, err
	}
	if !ok {
		return snapRec{}, syscall.ENOENT
	}
	return decodeSnapRec(b)
}

// snapshotTarget checks a snapshot command's privilege and names and
// returns its volume.
func snapshotTarget(t *txn, c *Command) (*volume, error) {
	if !privileged(c.Cred) {
		return nil, syscall.EPERM
	}
	if !ValidVolumeName(c.SnapName) {
		return nil, syscall.EINVAL
	}
	return t.volumeByName(c.VolName)
}

// opSnapshotDelete deletes snapshot SnapName of volume VolName: its record
// now, its directory once the batch is committed.
func opSnapshotDelete(t *txn, c *Command) (Result, error) {
	v, err := snapshotTarget(t, c)
	if err != nil {
		return Result{}, err
	}
	if _, err := t.snapshot(v.ID, c.SnapName); err != nil {
		return Result{}, err
	}
	t.del(snapKey(v.ID, c.SnapName))
	t.drops = append(t.drops, snapID{v.ID, c.SnapName})
	return Result{Volume: v.Volume}, nil
}

// dispatchCopy runs the snapshot commands that copy state. ApplyBatch has
// committed the entries before c, so the database holds the state just
// before it. Every errno outcome is decided before anything is copied.
func (ap *applier) dispatchCopy(t *txn, c *Command) (Result, error) {
	switch c.Op {
	case OpSnapshotCreate:
		return ap.snapshotCreate(t, c)
	case OpVolumeClone:
		return ap.volumeClone(t, c)
	case OpVolumeRevert:
		return ap.volumeRevert(t, c)
	}
	return Result{}, syscall.EINVAL
}

// snapshotCreate takes snapshot SnapName of volume VolName.
func (ap *applier) snapshotCreate(t *txn, c *Command) (Result, error) {
	v, err := snapshotTarget(t, c)
	if err != nil {
		return Result{}, err
	}
	if _, err := t.snapshot(v.ID, c.SnapName); err == nil {
		return Result{}, syscall.EEXIST
	} else if !errors.Is(err, syscall.ENOENT) {
		return Result{}, err
	}
	if err := ap.s.takeVolSnap(ap.db, snapID{v.ID, c.SnapName}); err != nil {
		return Result{}, err
	}
	rec := snapRec{Created: c.Time, Index: ap.index, Used: v.Used, Inodes: v.Inodes, VolName: v.Name}
	t.set(snapKey(v.ID, c.SnapName), rec.encode())
	return Result{Volume: v.Volume}, nil
}

// takeVolSnap flushes db and checkpoints it into snapshot id's directory,
// replacing one left by an earlier attempt (a replay after a crash).
func (s *Store) takeVolSnap(db *pebble.DB, id snapID) error {
	final := s.volSnapDir(id)
	volDir := filepath.Dir(final)
	tmp := filepath.Join(volDir, ".tmp-"+id.name)
	if err := os.RemoveAll(tmp); err != nil {
		return storageErr("volume snapshot", err)
	}
	if err := db.Flush(); err != nil {
		return storageErr("volume snapshot: flush", err)
	}
	if err := db.Checkpoint(tmp); err != nil {
		return storageErr("volume snapshot: checkpoint", err)
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	s.closeSnapshotsLocked(func(o snapID) bool { return o == id })
	if err := os.RemoveAll(final); err != nil {
		return storageErr("volume snapshot", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return storageErr("volume snapshot", err)
	}
	if err := syncDir(volDir); err != nil {
		return storageErr("volume snapshot", err)
	}
	return nil
}

// volumeClone creates volume ToName with the content volume VolName had in
// snapshot SnapName, exported with DefaultExport. Its limit is SizeLimit
// (EINVAL if below the data the snapshot holds), or if zero the source's
// current one, raised to that data if below it.
func (ap *applier) volumeClone(t *txn, c *Command) (Result, error) {
	src, err := snapshotTarget(t, c)
	if err != nil {
		return Result{}, err
	}
	if !ValidVolumeName(c.ToName) {
		return Result{}, syscall.EINVAL
	}
	rec, err := t.snapshot(src.ID, c.SnapName)
	if err != nil {
		return Result{}, err
	}
	if _, err := t.volumeByName(c.ToName); err == nil {
		return Result{}, syscall.EEXIST
	} else if !errors.Is(err, syscall.ENOENT) {
		return Result{}, err
	}
	limit := c.SizeLimit
	switch {
	case limit == 0:
		limit = max(src.SizeLimit, rec.Used)
	case limit < rec.Used:
		return Result{}, syscall.EINVAL
	}
	id := uint64(1)
	if b, ok, err := t.get(keyNextVol); err != nil {
		return Result{}, err
	} else if ok {
		if len(b) != 8 {
			return Result{}, ErrCorrupt
		}
		id = beUint64(b)
	}

	snapVol, err := ap.copyFromSnapshot(snapID{src.ID, c.SnapName}, id)
	if err != nil {
		return Result{}, err
	}
	nv := &volume{
		Volume: Volume{ID: id, Name: c.ToName, SizeLimit: limit, Used: snapVol.Used,
			Inodes: snapVol.Inodes, Created: c.Time, Export: DefaultExport()},
		NextIno: snapVol.NextIno,
		NextGen: snapVol.NextGen,
	}
	t.set(keyNextVol, be(nil, id+1))
	t.set(nameKey(c.ToName), be(nil, id))
	t.putVolume(nv)
	return Result{Volume: nv.Volume}, nil
}

// volumeRevert replaces the content of volume VolName with the one it had in
// snapshot SnapName, Used and Inodes included. The volume keeps its id, name,
// size limit, creation time and export, and its inode and generation
// counters, which never go back: an inode created after the snapshot keeps
// its number and generation to itself, so a file handle to it turns stale
// instead of naming a later file.
func (ap *applier) volumeRevert(t *txn, c *Command) (Result, error) {
	v, err := snapshotTarget(t, c)
	if err != nil {
		return Result{}, err
	}
	if _, err := t.snapshot(v.ID, c.SnapName); err != nil {
		return Result{}, err
	}
	snapVol, err := ap.copyFromSnapshot(snapID{v.ID, c.SnapName}, v.ID)
	if err != nil {
		return Result{}, err
	}
	v.Used, v.Inodes = snapVol.Used, snapVol.Inodes
	v.NextIno = max(v.NextIno, snapVol.NextIno)
	v.NextGen = max(v.NextGen, snapVol.NextGen)
	t.putVolume(v)
	return Result{Volume: v.Volume}, nil
}

// copyFromSnapshot replaces the content of volume to in the live database
// with that of volume id.vol in snapshot id, and returns the snapshot's
// record of that volume. The copy goes into the batch, which is committed
// whenever it holds copyPieceBytes (the applied index unchanged).
func (ap *applier) copyFromSnapshot(id snapID, to uint64) (*volume, error) {
	snap, err := ap.s.snapshotStore(ap.db, id, false)
	if err != nil {
		return nil, storageErr("open volume snapshot", err)
	}
	sdb, err := snap.acquire()
	if err != nil {
		return nil, storageErr("open volume snapshot", err)
	}
	defer snap.mu.RUnlock()
	b, ok, err := get(sdb, volKey(id.vol))
	if err != nil {
		return nil, storageErr("read volume snapshot", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: snapshot %q of volume %d has no record of the volume",
			ErrCorrupt, id.name, id.vol)
	}
	sv, err := decodeVolume(b)
	if err != nil {
		return nil, err
	}
	for _, p := range volPrefixes {
		start := be([]byte{p}, to)
		if err := ap.b.DeleteRange(start, prefixEnd(start), nil); err != nil {
			return nil, storageErr("delete range", err)
		}
	}
	var key []byte
	for _, p := range volPrefixes {
		lower := be([]byte{p}, id.vol)
		it, err := sdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return nil, storageErr("read volume snapshot", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			key = append(key[:0], it.Key()...)
			binary.BigEndian.PutUint64(key[1:9], to)
			val, err := it.ValueAndErr()
			if err == nil {
				err = ap.b.Set(key, val, nil)
			}
			if err == nil && ap.b.Len() >= copyPieceBytes {
				err = ap.commitPiece()
			}
			if err != nil {
				it.Close()
				return nil, storageErr("copy volume snapshot", err)
			}
		}
		if err := it.Close(); err != nil {
			return nil, storageErr("read volume snapshot", err)
		}
	}
	return sv, nil
}

// commitPiece commits the batch, which holds only part of a copy, without
// recording an applied index, and starts a new one.
func (ap *applier) commitPiece() error {
	if err := ap.b.Commit(pebble.NoSync); err != nil {
		return err
	}
	ap.newBatch()
	if testHookPiece != nil {
		return testHookPiece()
	}
	return nil
}

// dropSnapshots removes the directories of deleted volume snapshots, whose
// records are committed as deleted: db is flushed first, so that no crash
// can bring a record back without its directory.
func (s *Store) dropSnapshots(db *pebble.DB, drops []snapID) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	flushed := false
	for _, d := range drops {
		s.closeSnapshotsLocked(func(o snapID) bool {
			return o.vol == d.vol && (d.name == "" || o.name == d.name)
		})
		dir := s.volSnapDir(d)
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			continue // a volume without snapshots, or a missing one
		}
		if !flushed {
			if err := db.Flush(); err != nil {
				return storageErr("flush", err)
			}
			flushed = true
		}
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("removing a deleted volume snapshot; Open will retry",
				"dir", dir, "err", err)
			continue
		}
		parent := filepath.Dir(dir)
		if d.name != "" {
			if ents, err := os.ReadDir(parent); err == nil && len(ents) == 0 {
				_ = os.Remove(parent)
				parent = filepath.Dir(parent)
			}
		}
		_ = syncDir(parent)
	}
	return nil
}

// closeSnapshots closes the volume snapshot stores that match. The caller
// holds s.mu.
func (s *Store) closeSnapshots(match func(snapID) bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.closeSnapshotsLocked(match)
}

func (s *Store) closeSnapshotsLocked(match func(snapID) bool) {
	for id, sub := range s.snaps {
		if match(id) {
			sub.closeSnap()
			delete(s.snaps, id)
		}
	}
}

// closeSnap closes the database of a volume snapshot store.
func (s *Store) closeSnap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("closing a volume snapshot", "err", err)
	}
	s.db = nil
	s.cache.Unref()
}

// OpenSnapshot returns the state of volume vol as snapshot name holds it: a
// read-only Store on which GetAttr, Lookup, Read, ReadDir, Readlink,
// VolumeByID, … work as on s (it holds the whole state as of the snapshot,
// other volumes included), while ApplyBatch fails every entry with EROFS and
// Checkpoint, RestoreFrom, Snapshots and OpenSnapshot with ErrReadOnly. It
// fails with ENOENT if there is no such snapshot and with an error wrapping
// ErrSnapshotMissing if its directory is gone.
//
// The store is opened once and belongs to s: it stays open until the
// snapshot is deleted, s is restored from a checkpoint, or s is closed;
// after that its reads fail with ErrClosed. Its Close does nothing.
func (s *Store) OpenSnapshot(vol uint64, name string) (*Store, error) {
	if s.snapOf != nil {
		return nil, ErrReadOnly
	}
	if !ValidVolumeName(name) {
		return nil, syscall.EINVAL
	}
	db, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return s.snapshotStore(db, snapID{vol, name}, true)
}

// snapshotStore returns the (cached) store of snapshot id, checking first
// that db records it if checkRecord is set. The caller holds s.mu.
func (s *Store) snapshotStore(db *pebble.DB, id snapID, checkRecord bool) (*Store, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if sub := s.snaps[id]; sub != nil {
		return sub, nil
	}
	if checkRecord {
		b, ok, err := get(db, snapKey(id.vol, id.name))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, syscall.ENOENT
		}
		if _, err := decodeSnapRec(b); err != nil {
			return nil, err
		}
	}
	dir := s.volSnapDir(id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: snapshot %q of volume %d (%s)", ErrSnapshotMissing, id.name, id.vol, dir)
	}
	sub := &Store{dir: dir, log: s.log.With("volume", id.vol, "snapshot", id.name),
		cache: s.cache, snapOf: s}
	s.cache.Ref()
	sdb, err := sub.openDB(dir, true)
	if err != nil {
		s.cache.Unref()
		return nil, err
	}
	if err := sub.install(sdb); err != nil {
		sdb.Close()
		s.cache.Unref()
		return nil, err
	}
	if s.snaps == nil {
		s.snaps = make(map[snapID]*Store)
	}
	s.snaps[id] = sub
	return sub, nil
}

// Snapshots returns the snapshots of volume vol (of every volume if vol is
// 0), by volume id then name, each with the space it holds (HeldBytes) and
// whether its directory is missing. ErrReadOnly on a snapshot's store.
func (s *Store) Snapshots(vol uint64) ([]SnapshotInfo, error) {
	if s.snapOf != nil {
		return nil, ErrReadOnly
	}
	db, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	// Directories are removed under smu, after their records: holding it
	// from before reading the records, none goes missing under us.
	s.smu.Lock()
	defer s.smu.Unlock()
	lower := []byte{pSnap}
	if vol != 0 {
		lower = be(lower, vol)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("fsstate: list volume snapshots: %w", err)
	}
	defer it.Close()
	var out []SnapshotInfo
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("fsstate: list volume snapshots: %w", err)
		}
		if len(k) < 10 {
			return nil, fmt.Errorf("%w: volume snapshot key of %d bytes", ErrCorrupt, len(k))
		}
		rec, err := decodeSnapRec(v)
		if err != nil {
			return nil, err
		}
		info := SnapshotInfo{
			Vol: beUint64(k[1:9]), Name: string(k[9:]), VolName: rec.VolName,
			Created: rec.Created, Index: rec.Index, VolumeUsed: rec.Used, VolumeInodes: rec.Inodes,
		}
		info.HeldBytes, info.Missing, err = s.heldBytes(s.volSnapDir(snapID{info.Vol, info.Name}))
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("fsstate: list volume snapshots: %w", err)
	}
	return out, nil
}

// heldBytes sums the sizes of the files of a snapshot directory that the
// live database does not share: those without a file of the same name that
// is the same file (a hard link) in <dir>/state.
func (s *Store) heldBytes(dir string) (held uint64, missing bool, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("fsstate: volume snapshot: %w", err)
	}
	live := filepath.Join(s.dir, stateDir)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if lfi, err := os.Lstat(filepath.Join(live, e.Name())); err == nil && os.SameFile(fi, lfi) {
			continue
		}
		held += uint64(fi.Size())
	}
	return held, false, nil
}

// cleanVolSnaps removes whatever <dir>/volsnaps holds besides the
// directories of the snapshots db records: those of snapshots whose record
// a crash lost (the entry will be applied again), or that were deleted but
// not removed, and temporary directories.
func (s *Store) cleanVolSnaps(db *pebble.DB) error {
	root := filepath.Join(s.dir, volSnapsDir)
	vents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsstate: volume snapshots: %w", err)
	}
	remove := func(path string) error {
		s.log.Warn("removing a volume snapshot directory the state does not record", "dir", path)
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("fsstate: volume snapshots: %w", err)
		}
		return nil
	}
	for _, ve := range vents {
		vdir := filepath.Join(root, ve.Name())
		vol, perr := strconv.ParseUint(ve.Name(), 10, 64)
		if perr != nil || !ve.IsDir() || strconv.FormatUint(vol, 10) != ve.Name() {
			if err := remove(vdir); err != nil {
				return err
			}
			continue
		}
		nents, err := os.ReadDir(vdir)
		if err != nil {
			return fmt.Errorf("fsstate: volume snapshots: %w", err)
		}
		kept := 0
		for _, ne := range nents {
			if ne.IsDir() && ValidVolumeName(ne.Name()) {
				_, ok, err := get(db, snapKey(vol, ne.Name()))
				if err != nil {
					return err
				}
				if ok {
					kept++
					continue
				}
			}
			if err := remove(filepath.Join(vdir, ne.Name())); err != nil {
				return err
			}
		}
		if kept == 0 {
			_ = os.Remove(vdir)
		}
	}
	return nil
}

// checkpointVolSnaps adds to the checkpoint in dir the directories of the
// snapshots db records, in dir/volsnaps/<vol>/<name>: table and blob files
// hard-linked, the others copied. A snapshot whose directory is missing is
// left out (it stays recorded, and missing, wherever the checkpoint goes).
func (s *Store) checkpointVolSnaps(db *pebble.DB, dir string) error {
	lower := []byte{pSnap}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	defer it.Close()
	var ids []snapID
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 10 {
			return fmt.Errorf("%w: volume snapshot key of %d bytes", ErrCorrupt, len(k))
		}
		ids = append(ids, snapID{beUint64(k[1:9]), string(k[9:])})
	}
	if err := it.Error(); err != nil {
		return err
	}
	root := filepath.Join(dir, volSnapsDir)
	synced := map[string]bool{}
	for _, id := range ids {
		src := s.volSnapDir(id)
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("volume snapshot missing; left out of the checkpoint",
				"volume", id.vol, "snapshot", id.name)
			continue
		}
		volDir := filepath.Join(root, strconv.FormatUint(id.vol, 10))
		if err := cloneDir(src, filepath.Join(volDir, id.name)); err != nil {
			return err
		}
		synced[volDir] = true
	}
	if len(synced) == 0 {
		return nil
	}
	for d := range synced {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	if err := syncDir(root); err != nil {
		return err
	}
	return syncDir(dir)
}

// stageVolSnaps fills the new directory dst with the volume snapshots of a
// checkpoint, src (its volsnaps subdirectory, which may not exist): the
// layout <vol>/<name>/ is checked, files are linked or copied as by
// cloneDir, and everything is synced.
func stageVolSnaps(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	vents, err := os.ReadDir(src)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, ve := range vents {
		vol, perr := strconv.ParseUint(ve.Name(), 10, 64)
		if perr != nil || !ve.IsDir() || strconv.FormatUint(vol, 10) != ve.Name() {
			return fmt.Errorf("unexpected %s", filepath.Join(src, ve.Name()))
		}
		nents, err := os.ReadDir(filepath.Join(src, ve.Name()))
		if err != nil {
			return err
		}
		for _, ne := range nents {
			if !ne.IsDir() || !ValidVolumeName(ne.Name()) {
				return fmt.Errorf("unexpected %s", filepath.Join(src, ve.Name(), ne.Name()))
			}
			if err := cloneDir(filepath.Join(src, ve.Name(), ne.Name()),
				filepath.Join(dst, ve.Name(), ne.Name())); err != nil {
				return err
			}
		}
		if err := syncDir(filepath.Join(dst, ve.Name())); err != nil {
			return err
		}
	}
	if err := syncDir(dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// installRestoredVolSnaps makes the volume snapshots a RestoreFrom staged in
// <dir>/state/volsnaps.restored the store's volsnaps, replacing the old
// ones. Once the restored state is swapped in, this is what is left to do;
// Open does it if a crash came first. The database must not be open.
func (s *Store) installRestoredVolSnaps() error {
	restored := filepath.Join(s.dir, stateDir, volSnapsRestored)
	if _, err := os.Stat(restored); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("fsstate: restore volume snapshots: %w", err)
	}
	cur := filepath.Join(s.dir, volSnapsDir)
	old := filepath.Join(s.dir, volSnapsOldDir)
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("fsstate: restore volume snapshots: %w", err)
	}
	if err := os.Rename(cur, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsstate: restore volume snapshots: %w", err)
	}
	if err := os.Rename(restored, cur); err != nil {
		return fmt.Errorf("fsstate: restore volume snapshots: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if err := syncDir(filepath.Join(s.dir, stateDir)); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		s.log.Warn("removing the replaced volume snapshots", "dir", old, "err", err)
	}
	return nil
}
