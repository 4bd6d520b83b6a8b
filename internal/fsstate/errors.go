package fsstate

import (
	"errors"
	"fmt"
)

// ErrBadCommand is wrapped by every error DecodeCommand returns; a log entry
// that does not decode is applied as a no-op failing with EINVAL.
var ErrBadCommand = errors.New("fsstate: bad command")

// ErrClosed is returned by methods of a Store that has been closed.
var ErrClosed = errors.New("fsstate: store is closed")

// ErrFormat is wrapped by the error Open returns when the directory holds a
// store written in a format this build does not understand.
var ErrFormat = errors.New("fsstate: unsupported store format")

// ErrCorrupt is wrapped by errors reporting a record that does not decode.
var ErrCorrupt = errors.New("fsstate: corrupt record")

// storageError marks a failure of the underlying database while applying a
// command. Unlike a syscall.Errno it is not an outcome of the command: the
// whole batch is abandoned, since replicas could otherwise diverge.
type storageError struct{ err error }

func (e *storageError) Error() string { return "fsstate: storage: " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

func storageErr(op string, err error) error {
	return &storageError{fmt.Errorf("%s: %w", op, err)}
}

// ErrReadOnly is returned by the methods that change a store, or manage its
// volume snapshots, when called on the read-only store of a volume snapshot
// (Store.OpenSnapshot).
var ErrReadOnly = errors.New("fsstate: store is a read-only volume snapshot")

// ErrSnapshotMissing is wrapped by the error OpenSnapshot returns when the
// state records a volume snapshot whose directory is gone
// (SnapshotInfo.Missing).
var ErrSnapshotMissing = errors.New("fsstate: volume snapshot directory is missing")
