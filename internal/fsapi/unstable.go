package fsapi

import (
	"context"
	"errors"
	"sync"

	"keel/internal/fsstate"
)

// Unstable writes (NFS WRITE with stable_how UNSTABLE) are answered once
// they are in the replication pipeline: proposed to raft, in log order
// before anything proposed after them, but not yet committed. What makes
// that safe is what NFS asks of a server that does so:
//
//   - COMMIT of the file (Commit) waits until every unstable write to it
//     accepted before has been committed on a quorum and applied, and
//     reports the error of one that failed in the state machine;
//   - a write that did not make it (leadership lost, raft shut down, the
//     queue timed out) changes the write epoch, which is part of the write
//     verifier, so that a client comparing its WRITE replies' verifier with
//     its COMMIT's resends everything not yet committed. A change of leader
//     changes the verifier's term part as well.
//
// Reads of a file (Settle) wait for its unstable writes, so that a client
// reads what it wrote. The bytes in flight are bounded (maxUnstableEntries
// log entries of at most fsstate.MaxEntryData): a client writing faster than
// the log commits waits for room.

// maxUnstableEntries bounds the unstable write entries in flight on a node.
const maxUnstableEntries = 32 // × 256 KiB = 8 MiB

// maxStickyErrors bounds the files with a failed unstable write that no
// COMMIT has reported yet; past it they are forgotten and the epoch changes
// instead, so their clients resend (and then see the error).
const maxStickyErrors = 4096

type fileKey struct{ vol, ino uint64 }

// pendingFile is the unstable writes of one file in flight.
type pendingFile struct {
	n    int           // writes in flight
	idle chan struct{} // closed when n drops to 0
	err  error         // the first state-machine error not yet reported
}

type unstableWrites struct {
	once   sync.Once
	tokens chan struct{} // one per entry in flight

	mu     sync.Mutex
	files  map[fileKey]*pendingFile
	epoch  uint32
	sticky int
}

func (u *unstableWrites) init() {
	u.once.Do(func() {
		u.tokens = make(chan struct{}, maxUnstableEntries)
		u.files = map[fileKey]*pendingFile{}
	})
}

// WriteEpoch is the part of the write verifier that changes whenever an
// unstable write this node answered was lost (see above).
func (f *FS) WriteEpoch() uint32 {
	f.unstable.init()
	f.unstable.mu.Lock()
	defer f.unstable.mu.Unlock()
	return f.unstable.epoch
}

// WriteUnstable writes data at off like Write, but returns as soon as the
// write's entries are in the replication pipeline. The caller reads the
// write verifier (the term and WriteEpoch) before calling it. Errors that
// this node's state shows now (stale handle, permission, no space, not the
// leader) are returned at once and nothing is written; an error found when
// the write is applied is kept for the file's next Commit.
func (f *FS) WriteUnstable(ctx context.Context, cred *fsstate.Cred, vol, ino, off uint64, data []byte) error {
	u := &f.unstable
	u.init()
	st, err := f.Local()
	if err != nil {
		return err
	}
	if err := st.CheckWrite(vol, ino, cred, off, uint64(len(data))); err != nil {
		return err
	}
	release, err := f.reserve(vol, ino, off, uint64(len(data)))
	if err != nil {
		return err
	}
	now := fsstate.Time(f.now().UnixNano())
	req := requestFrom(ctx)
	var cmds []*fsstate.Command
	for start := 0; start < len(data); start += fsstate.MaxEntryData {
		end := min(start+fsstate.MaxEntryData, len(data))
		cmds = append(cmds, &fsstate.Command{Op: fsstate.OpWrite, Time: now, Cred: cred, Vol: vol, Ino: ino,
			Offset: off + uint64(start), Data: data[start:end], Req: entryRequest(req, len(cmds))})
	}
	if len(cmds) == 0 {
		release()
		return nil // nothing to write
	}
	held := 0
	giveBack := func() {
		for range held {
			<-u.tokens
		}
		release()
	}
	for range cmds {
		select {
		case u.tokens <- struct{}{}:
			held++
		case <-ctx.Done():
			giveBack()
			return ctx.Err()
		}
	}
	key := fileKey{vol, ino}
	u.mu.Lock()
	p := u.files[key]
	if p == nil {
		p = &pendingFile{}
		u.files[key] = p
	}
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
	u.mu.Unlock()

	f.writes.touch(vol)
	wait, err := f.r.ProposeMany(context.WithoutCancel(ctx), cmds)
	if err != nil {
		u.done(key, nil, false)
		giveBack()
		return err
	}
	go func() {
		defer giveBack()
		results, err := wait()
		var applyErr error
		if err == nil {
			for _, r := range results {
				if r.Err != 0 {
					applyErr = r.Err
					break
				}
			}
		}
		u.done(key, applyErr, err != nil)
	}()
	return nil
}

// done ends one write of a file: lost means it may not have been made
// (the epoch changes); applyErr is kept for the next Commit.
func (u *unstableWrites) done(key fileKey, applyErr error, lost bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if lost {
		u.epoch++
	}
	p := u.files[key]
	if applyErr != nil && p.err == nil {
		if u.sticky >= maxStickyErrors {
			u.forgetErrors()
			u.epoch++
		}
		p.err = applyErr
		u.sticky++
	}
	p.n--
	if p.n == 0 {
		close(p.idle)
		if p.err == nil {
			delete(u.files, key)
		}
	}
}

func (u *unstableWrites) forgetErrors() {
	for k, p := range u.files {
		if p.err != nil {
			p.err = nil
			u.sticky--
			if p.n == 0 {
				delete(u.files, k)
			}
		}
	}
}

// settle waits until no unstable write to the file is in flight and
// returns the pending file record (nil if none), with u.mu held.
func (u *unstableWrites) settle(ctx context.Context, key fileKey) (*pendingFile, error) {
	u.init()
	for {
		u.mu.Lock()
		p := u.files[key]
		if p == nil || p.n == 0 {
			return p, nil
		}
		idle := p.idle
		u.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Settle waits until the unstable writes to a file accepted so far have
// been committed and applied (or have failed), so that a read of the file
// sees them.
func (f *FS) Settle(ctx context.Context, vol, ino uint64) error {
	_, err := f.unstable.settle(ctx, fileKey{vol, ino})
	if err == nil {
		f.unstable.mu.Unlock()
	}
	return err
}

// ErrWriteFailed wraps the error of an unstable write that failed when it
// was applied, reported by the file's next Commit.
var ErrWriteFailed = errors.New("fsapi: an earlier unstable write to this file failed")

// Commit waits until every unstable write to a file accepted before it has
// been committed on a quorum and applied, and returns the error of one that
// failed in the state machine since the last Commit (reported once). A
// write that was lost instead shows in the changed WriteEpoch, which the
// caller reads after Commit returns.
func (f *FS) Commit(ctx context.Context, vol, ino uint64) error {
	u := &f.unstable
	key := fileKey{vol, ino}
	p, err := u.settle(ctx, key)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	if p == nil || p.err == nil {
		return nil
	}
	err = p.err
	p.err = nil
	u.sticky--
	delete(u.files, key)
	return errors.Join(ErrWriteFailed, err)
}
