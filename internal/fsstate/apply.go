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
// A storage failure (the database cannot be read or written) leaves the
// replica unable to follow the log, so ApplyBatch panics with it; use
// TryApplyBatch to handle it instead.
func (s *Store) ApplyBatch(entries []Entry) []Result {
	res, err := s.TryApplyBatch(entries)
	if err != nil {
		s.log.Error("apply failed; stopping", "err", err)
		panic(err)
	}
	return res
}

// TryApplyBatch is ApplyBatch returning storage failures instead of
// panicking. After an error nothing of the batch has been applied.
func (s *Store) TryApplyBatch(entries []Entry) ([]Result, error) {
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
	b := db.NewIndexedBatchWithSize(size)
	defer b.Close()
	t := newTxn(b)
	res := make([]Result, len(entries))
	applied := false
	for i, e := range entries {
		if e.Index <= a.Index {
			res[i].Skipped = true
			continue
		}
		r, err := s.applyEntry(t, e)
		if err != nil {
			return nil, fmt.Errorf("fsstate: apply entry %d: %w", e.Index, err)
		}
		res[i] = r
		a.Index, a.Term = e.Index, e.Term
		a.Bytes += uint64(len(e.Data))
		applied = true
	}
	if !applied {
		return res, nil
	}
	if err := b.Set(keyApplied, a.encode(), nil); err != nil {
		return nil, storageErr("record applied index", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, storageErr("commit", err)
	}
	s.amu.Lock()
	s.applied = a
	s.amu.Unlock()
	return res, nil
}

// applyEntry applies one entry's command through t. Errno outcomes are
// returned in the Result; any other error is a storage failure.
//
// A command carrying a Req that was already recorded with the same argument
// hash is answered from the record and changes nothing; otherwise its
// Result, success or failure, is recorded with its change (drc.go).
func (s *Store) applyEntry(t *txn, e Entry) (Result, error) {
	c, err := decodeCommand(e.Data, false)
	if err != nil {
		s.log.Warn("undecodable log entry applied as a failed no-op",
			"index", e.Index, "err", err)
		return Result{Err: syscall.EINVAL}, nil
	}
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
	r, err := dispatch(t, c)
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
	}
	return Result{}, syscall.EINVAL
}
