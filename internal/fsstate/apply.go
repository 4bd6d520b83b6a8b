package fsstate

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Entry is one raft log entry to apply: its index, term and encoded Command.
type Entry struct {
	Index, Term uint64
	Data        []byte
}

// ApplyBatch applies the entries in order, in one Pebble batch committed
// together with the new applied index, and returns one Result per entry.
// Entries at or below the stored applied index are skipped (Result.Skipped).
// A failing command changes nothing but the applied index; an entry that
// does not decode fails with EINVAL.
//
// Volume snapshot commands that copy state (OpSnapshotCreate,
// OpVolumeClone, OpVolumeRevert) split the batch: the entries before one
// are committed first, with the applied index of the last of them, so that
// the command sees, and a snapshot holds, exactly the state before it
// (volsnap.go).
//
// A storage failure (the database cannot be read or written) leaves the
// replica unable to follow the log, so ApplyBatch panics with it; use
// TryApplyBatch to handle it instead. On the read-only store of a volume
// snapshot every entry fails with EROFS.
func (s *Store) ApplyBatch(entries []Entry) []Result {
	if s.snapOf != nil {
		res := make([]Result, len(entries))
		for i := range res {
			res[i].Err = syscall.EROFS
		}
		return res
	}
	res, err := s.TryApplyBatch(entries)
	if err != nil {
		if s.disk.Stop != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
			s.disk.Stop("applying committed entries to the state", err)
		}
		s.log.Error("apply failed; stopping", "err", err)
		panic(err)
	}
	return res
}

// TryApplyBatch is ApplyBatch returning storage failures instead of
// panicking. After an error the entries not yet committed are not applied:
// none of the batch, unless a volume snapshot command split it, in which case
// Applied tells how far it went. It fails with ErrReadOnly on the store of a
// volume snapshot.
func (s *Store) TryApplyBatch(entries []Entry) ([]Result, error) {
	if s.snapOf != nil {
		return nil, ErrReadOnly
	}
	db, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()

	s.amu.Lock()
	a := s.applied
	s.amu.Unlock()

	// Room for each entry's data plus its keys and rewritten records, so
	// that the batch is not reallocated (and copied) while it grows.
	size := 256
	for _, e := range entries {
		size += len(e.Data) + 2048
	}
	ap := &applier{s: s, db: db, a: a, b: db.NewIndexedBatchWithSize(size)}
	defer func() {
		if ap.b != nil {
			ap.b.Close()
		}
	}()
	ap.t = newTxn(ap.b)
	res := make([]Result, len(entries))
	for i, e := range entries {
		if e.Index <= ap.a.Index {
			res[i].Skipped = true
			continue
		}
		r, err := ap.apply(e)
		if err != nil {
			return nil, fmt.Errorf("fsstate: apply entry %d: %w", e.Index, err)
		}
		res[i] = r
		ap.a.Index, ap.a.Term = e.Index, e.Term
		ap.a.Bytes += uint64(len(e.Data))
		ap.pending = true
	}
	if err := ap.commit(false); err != nil {
		return nil, err
	}
	return res, nil
}

// applier is one TryApplyBatch call in progress.
type applier struct {
	s       *Store
	db      *pebble.DB
	b       *pebble.Batch // the batch being built; t writes into it
	t       *txn
	a       appliedRec // the applied index b records when committed
	pending bool       // b holds applied entries not committed yet
	index   uint64     // the index of the entry being applied
}

// apply applies one entry's command through t. Errno outcomes are returned
// in the Result; any other error is a storage failure.
func (ap *applier) apply(e Entry) (Result, error) {
	c, err := decodeCommand(e.Data, false)
	if err != nil {
		ap.s.log.Warn("undecodable log entry applied as a failed no-op",
			"index", e.Index, "err", err)
		return Result{Err: syscall.EINVAL}, nil
	}
	ap.index = e.Index
	run := dispatch
	switch c.Op {
	case OpSnapshotCreate, OpVolumeClone, OpVolumeRevert:
		if err := ap.commit(true); err != nil {
			return Result{}, err
		}
		run = ap.dispatchCopy
	}
	return applyCommand(ap.t, c, run)
}

// commit commits the batch, if it holds applied entries, with the applied
// index of the last of them, removes the directories of the volume
// snapshots its commands deleted, and, if more is to come, starts a new
// batch.
func (ap *applier) commit(more bool) error {
	if !ap.pending {
		return nil
	}
	if err := ap.b.Set(keyApplied, ap.a.encode(), nil); err != nil {
		return storageErr("record applied index", err)
	}
	if err := ap.b.Commit(pebble.NoSync); err != nil {
		return storageErr("commit", err)
	}
	ap.pending = false
	ap.s.amu.Lock()
	ap.s.applied = ap.a
	ap.s.amu.Unlock()
	ap.b.Close()
	ap.b = nil
	if more {
		ap.newBatch()
	}
	if len(ap.t.done) > 0 {
		drops := ap.t.done
		ap.t.done = nil
		if err := ap.s.dropSnapshots(ap.db, drops); err != nil {
			return err
		}
	}
	return nil
}

// newBatch replaces the (committed) batch with an empty one.
func (ap *applier) newBatch() {
	if ap.b != nil {
		ap.b.Close()
	}
	ap.b = ap.db.NewIndexedBatch()
	ap.t.b = ap.b
}

// applyCommand applies c through t with run. Errno outcomes are returned
// in the Result; any other error is a storage failure.
//
// A command carrying a Req that was already recorded with the same argument
// hash is answered from the record and changes nothing; otherwise its
// Result, success or failure, is recorded with its change (drc.go).
func applyCommand(t *txn, c *Command, run func(*txn, *Command) (Result, error)) (Result, error) {
	t.reset(c)
	if c.Req != nil {
		r, ok, err := t.replay(c.Req, c.Time)
		if err != nil {
			return Result{}, err
		}
		if ok {
			t.reset(nil)
			return r, nil
		}
	}
	r, err := run(t, c)
	if err != nil {
		var en syscall.Errno
		if !errors.As(err, &en) || isStorage(err) {
			return Result{}, err
		}
		t.reset(c)
		r = Result{Err: en}
	}
	if c.Req != nil {
		if err := t.recordReply(c, r); err != nil {
			return Result{}, err
		}
	}
	if err := t.commit(); err != nil {
		return Result{}, err
	}
	return r, nil
}

func isStorage(err error) bool {
	var se *storageError
	return errors.As(err, &se) || errors.Is(err, ErrCorrupt)
}

// dispatch runs the operation of c.
func dispatch(t *txn, c *Command) (Result, error) {
	switch c.Op {
	case OpNoop:
		return Result{}, nil
	case OpCreateVolume:
		return opCreateVolume(t, c)
	case OpResizeVolume:
		return opResizeVolume(t, c)
	case OpDeleteVolume:
		return opDeleteVolume(t, c)
	case OpCreate:
		return opCreate(t, c)
	case OpWrite:
		return opWrite(t, c)
	case OpSetAttr:
		return opSetAttr(t, c)
	case OpRemove:
		return opRemove(t, c)
	case OpRmdir:
		return opRmdir(t, c)
	case OpRename:
		return opRename(t, c)
	case OpLink:
		return opLink(t, c)
	case OpSetExport:
		return opSetExport(t, c)
	case OpSnapshotDelete:
		return opSnapshotDelete(t, c)
	case OpClusterSet:
		return opClusterSet(t, c)
	}
	return Result{}, syscall.EINVAL
}
