// Package fsapitest runs the filesystem API without raft, for tests of the
// packages above it (NFS, backups): commands are applied straight to a
// store, in order, as raft would apply them on a single node.
package fsapitest

import (
	"context"
	"sync"

	"keel/internal/fsstate"
)

// Local is an fsapi.Replicator that applies commands directly to a store.
type Local struct {
	mu      sync.Mutex
	store   *fsstate.Store
	index   uint64
	entries int
}

// New returns a replicator over st.
func New(st *fsstate.Store) *Local { return &Local{store: st} }

// Apply applies one command.
func (l *Local) Apply(ctx context.Context, cmd *fsstate.Command) (fsstate.Result, error) {
	r, err := l.ApplyMany(ctx, []*fsstate.Command{cmd})
	if err != nil {
		return fsstate.Result{}, err
	}
	return r[0], nil
}

// ApplyMany applies commands in order, as consecutive log entries.
func (l *Local) ApplyMany(_ context.Context, cmds []*fsstate.Command) ([]fsstate.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ents := make([]fsstate.Entry, 0, len(cmds))
	for _, c := range cmds {
		l.index++
		ents = append(ents, fsstate.Entry{Index: l.index, Term: 1, Data: c.Encode()})
	}
	l.entries += len(ents)
	return l.store.ApplyBatch(ents), nil
}

// ProposeMany applies commands at once; wait returns their results.
func (l *Local) ProposeMany(ctx context.Context, cmds []*fsstate.Command) (func() ([]fsstate.Result, error), error) {
	res, err := l.ApplyMany(ctx, cmds)
	return func() ([]fsstate.Result, error) { return res, err }, nil
}

// ReadIndex succeeds at once: a single applier is always up to date.
func (l *Local) ReadIndex(context.Context) error { return nil }

// Store returns the store.
func (l *Local) Store() *fsstate.Store { return l.store }

// Entries returns how many log entries have been applied.
func (l *Local) Entries() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries
}
