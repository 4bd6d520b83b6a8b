package fsapi

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"keel/internal/fsapi/fsapitest"
	"keel/internal/fsstate"
)

// gated is a replicator whose proposals wait at a gate: ProposeMany returns
// at once, and each proposal is applied (or lost, as when leadership is
// lost) only when the test opens the gate for it, in order.
type gated struct {
	*fsapitest.Local
	mu    sync.Mutex
	gates []chan bool // true: apply; false: lose
}

func (g *gated) ProposeMany(ctx context.Context, cmds []*fsstate.Command) (func() ([]fsstate.Result, error), error) {
	gate := make(chan bool, 1)
	g.mu.Lock()
	g.gates = append(g.gates, gate)
	g.mu.Unlock()
	return func() ([]fsstate.Result, error) {
		if !<-gate {
			return nil, errors.New("leadership lost")
		}
		return g.Local.ApplyMany(ctx, cmds)
	}, nil
}

// open decides the fate of the i-th proposal.
func (g *gated) open(t *testing.T, i int, apply bool) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if i >= len(g.gates) {
		t.Fatalf("proposal %d was never made (%d were)", i, len(g.gates))
	}
	g.gates[i] <- apply
}

func newGatedFS(t *testing.T) (*FS, *gated, uint64, uint64) {
	t.Helper()
	st, err := fsstate.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &gated{Local: fsapitest.New(st)}
	fs := New(g.Local) // set up synchronously, then switch to the gate
	ctx := context.Background()
	v, err := fs.CreateVolume(ctx, "v", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fs.Create(ctx, nil, CreateArgs{Vol: v.ID, Dir: fsstate.RootIno, Name: "f", Type: fsstate.TypeRegular, Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	fs.r = g
	return fs, g, v.ID, res.Attr.Ino
}

// returnsWithin runs f and fails unless it returns within d.
func returnsWithin(t *testing.T, what string, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
		return nil
	}
}

// blocked fails unless f is still running after a while; it returns a
// channel with f's result.
func blocked(t *testing.T, what string, f func() error) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) before the writes it must wait for were applied", what, err)
	case <-time.After(100 * time.Millisecond):
	}
	return done
}

func TestUnstableWriteAnsweredBeforeCommitAndCommitWaits(t *testing.T) {
	fs, g, vol, ino := newGatedFS(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("unstable"), 300<<10/8) // two entries
	if err := returnsWithin(t, "WriteUnstable", 5*time.Second, func() error {
		return fs.WriteUnstable(ctx, nil, vol, ino, 0, data)
	}); err != nil {
		t.Fatal(err)
	}
	epoch := fs.WriteEpoch()
	commit := blocked(t, "Commit", func() error { return fs.Commit(ctx, vol, ino) })
	read := blocked(t, "Settle (a read of the file)", func() error { return fs.Settle(ctx, vol, ino) })
	// Another file's commit does not wait for this one's writes.
	if err := returnsWithin(t, "Commit of another file", 5*time.Second, func() error { return fs.Commit(ctx, vol, ino+1000) }); err != nil {
		t.Fatal(err)
	}
	g.open(t, 0, true)
	if err := <-commit; err != nil {
		t.Fatalf("Commit after the write was applied: %v", err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if fs.WriteEpoch() != epoch {
		t.Fatalf("the write epoch changed from %d to %d although no write was lost", epoch, fs.WriteEpoch())
	}
	got, _, err := fs.Read(ctx, vol, ino, 0, uint32(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
	}
}

func TestLostUnstableWriteChangesTheEpoch(t *testing.T) {
	fs, g, vol, ino := newGatedFS(t)
	ctx := context.Background()
	epoch := fs.WriteEpoch()
	if err := fs.WriteUnstable(ctx, nil, vol, ino, 0, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	commit := blocked(t, "Commit", func() error { return fs.Commit(ctx, vol, ino) })
	g.open(t, 0, false)
	// COMMIT succeeds (nothing failed in the state machine) but the epoch,
	// and so the verifier it answers with, is not the one of the write.
	if err := <-commit; err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if fs.WriteEpoch() == epoch {
		t.Fatalf("a lost unstable write left the write epoch at %d: a client would not resend it", epoch)
	}
	if got, _, _ := fs.Read(ctx, vol, ino, 0, 10); len(got) != 0 {
		t.Fatalf("the lost write is in the file: %q", got)
	}
}

func TestUnstableWriteErrorReportedByCommitOnce(t *testing.T) {
	fs, g, vol, ino := newGatedFS(t)
	ctx := context.Background()
	if err := fs.WriteUnstable(ctx, nil, vol, ino, 0, []byte("doomed")); err != nil {
		t.Fatal(err)
	}
	// The file is removed before the write is applied (raft order: the
	// remove was proposed after it, but the test applies it first).
	g.Local.Apply(ctx, &fsstate.Command{Op: fsstate.OpRemove, Vol: vol, Dir: fsstate.RootIno, Name: "f", Time: 1})
	epoch := fs.WriteEpoch()
	g.open(t, 0, true)
	err := fs.Commit(ctx, vol, ino)
	if !errors.Is(err, ErrWriteFailed) || !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("Commit after the write failed when applied: %v, want ErrWriteFailed with the state machine's error", err)
	}
	if fs.WriteEpoch() != epoch {
		t.Fatalf("an applied (failed) write changed the epoch")
	}
	if err := fs.Commit(ctx, vol, ino); err != nil {
		t.Fatalf("second Commit: %v, want nil (the error is reported once)", err)
	}
}

func TestUnstableWriteChecksBeforeAnswering(t *testing.T) {
	fs, g, vol, ino := newGatedFS(t)
	ctx := context.Background()
	// Not the owner, no write permission (mode 0644, owner 0).
	other := &fsstate.Cred{UID: 1000, GID: 1000}
	if err := fs.WriteUnstable(ctx, other, vol, ino, 0, []byte("x")); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("unstable write without permission: %v, want EACCES at once", err)
	}
	if err := fs.WriteUnstable(ctx, nil, vol, fsstate.RootIno, 0, []byte("x")); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("unstable write to a directory: %v, want EISDIR at once", err)
	}
	g.mu.Lock()
	n := len(g.gates)
	g.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d refused writes were proposed", n)
	}
}
