// Package fsapi is the filesystem API that the NFS server and the admin API
// call: every change becomes a command that the leader stamps with its clock
// and proposes through raft (returning only once a quorum has it and the
// leader has applied it); every read waits for the read-index barrier and is
// then served from the leader's local state.
//
// Writes larger than one log entry (fsstate.MaxEntryData) are split into
// several entries proposed together; raft's group commit batches concurrent
// small writes into one fsync per round.
package fsapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"keel/internal/fsstate"
)

// Replicator is what fsapi needs from the replication layer.
type Replicator interface {
	Apply(ctx context.Context, cmd *fsstate.Command) (fsstate.Result, error)
	// ApplyMany proposes commands in order and waits for all of them.
	ApplyMany(ctx context.Context, cmds []*fsstate.Command) ([]fsstate.Result, error)
	// ProposeMany puts commands in the replication pipeline in order and
	// returns without waiting; wait waits as ApplyMany does.
	ProposeMany(ctx context.Context, cmds []*fsstate.Command) (wait func() ([]fsstate.Result, error), err error)
	ReadIndex(ctx context.Context) error
	Store() *fsstate.Store
}

// FS is the filesystem API of one node.
type FS struct {
	r   Replicator
	now func() time.Time

	mu       sync.Mutex
	reserved map[uint64]uint64 // volume id → bytes of writes in flight
	writes   writeTracker
	unstable unstableWrites
}

// New returns the API over a replicator.
func New(r Replicator) *FS {
	return &FS{r: r, now: time.Now, reserved: map[uint64]uint64{}}
}

// apply stamps a command with the leader's time and proposes it; a command
// that failed in the state machine returns its errno as the error, with the
// result (WCC data) still filled in.
func (f *FS) apply(ctx context.Context, cmd *fsstate.Command) (fsstate.Result, error) {
	if cmd.Time == 0 {
		cmd.Time = fsstate.Time(f.now().UnixNano())
	}
	if cmd.Req == nil {
		cmd.Req = requestFrom(ctx)
	}
	if cmd.Vol != 0 {
		f.writes.touch(cmd.Vol)
	}
	res, err := f.r.Apply(ctx, cmd)
	if err != nil {
		return res, err
	}
	if res.Err != 0 {
		return res, res.Err
	}
	return res, nil
}

func (f *FS) read(ctx context.Context) (*fsstate.Store, error) {
	if err := f.r.ReadIndex(ctx); err != nil {
		return nil, err
	}
	st := f.r.Store()
	if st == nil {
		return nil, errors.New("fsapi: this node is a witness and holds no data")
	}
	return st, nil
}

// Now returns the leader clock reading used for "set to server time".
func (f *FS) Now() fsstate.Time { return fsstate.Time(f.now().UnixNano()) }

// CreateVolume creates a volume with a size limit in bytes.
func (f *FS) CreateVolume(ctx context.Context, name string, size uint64) (fsstate.Volume, error) {
	res, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpCreateVolume, VolName: name, SizeLimit: size})
	return res.Volume, err
}

// ResizeVolume changes a volume's size limit.
func (f *FS) ResizeVolume(ctx context.Context, name string, size uint64) (fsstate.Volume, error) {
	res, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpResizeVolume, VolName: name, SizeLimit: size})
	if errors.Is(err, syscall.EINVAL) {
		if st := f.r.Store(); st != nil {
			if v, verr := st.VolumeByName(name); verr == nil && size < v.Used {
				return res.Volume, fmt.Errorf("volume %s holds %d bytes, more than the new size %d: delete data first or choose a larger size: %w",
					name, v.Used, size, err)
			}
		}
	}
	return res.Volume, err
}

// SetExport replaces a volume's NFS export settings.
func (f *FS) SetExport(ctx context.Context, name string, e fsstate.Export) (fsstate.Volume, error) {
	res, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpSetExport, VolName: name, Export: &e})
	return res.Volume, err
}

// DeleteVolume deletes a volume; one holding files only with force.
func (f *FS) DeleteVolume(ctx context.Context, name string, force bool) error {
	_, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpDeleteVolume, VolName: name, Force: force})
	return err
}

// CreateArgs are the arguments of Create.
type CreateArgs struct {
	Vol, Dir   uint64
	Name       string
	Type       fsstate.FileType
	Mode       uint32
	UID, GID   uint32
	Target     string // symlinks
	CreateMode fsstate.CreateMode
	Verf       uint64
}

// Create makes a file, directory or symlink.
func (f *FS) Create(ctx context.Context, cred *fsstate.Cred, a CreateArgs) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpCreate, Cred: cred, Vol: a.Vol, Dir: a.Dir, Name: a.Name,
		Type: a.Type, Mode: a.Mode, UID: a.UID, GID: a.GID, Target: a.Target, CMode: a.CreateMode, Verf: a.Verf})
}

// SetAttr changes attributes; guard, if set, must equal the current ctime.
func (f *FS) SetAttr(ctx context.Context, cred *fsstate.Cred, vol, ino uint64, set fsstate.SetAttr, guard *fsstate.Time) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpSetAttr, Cred: cred, Vol: vol, Ino: ino, Set: set, Guard: guard})
}

// Remove unlinks a non-directory.
func (f *FS) Remove(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpRemove, Cred: cred, Vol: vol, Dir: dir, Name: name})
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpRmdir, Cred: cred, Vol: vol, Dir: dir, Name: name})
}

// Rename moves an entry, replacing what the destination held if allowed.
func (f *FS) Rename(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string, toDir uint64, toName string) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpRename, Cred: cred, Vol: vol, Dir: dir, Name: name, ToDir: toDir, ToName: toName})
}

// Link makes a hard link to ino as dir/name.
func (f *FS) Link(ctx context.Context, cred *fsstate.Cred, vol, ino, dir uint64, name string) (fsstate.Result, error) {
	return f.apply(ctx, &fsstate.Command{Op: fsstate.OpLink, Cred: cred, Vol: vol, Ino: ino, Dir: dir, Name: name})
}

// Write writes data at off. Data larger than one log entry is split into
// entries that are proposed together and committed in order; the space they
// need is reserved first, so a write that does not fit fails with ENOSPC
// before any part of it is made.
func (f *FS) Write(ctx context.Context, cred *fsstate.Cred, vol, ino, off uint64, data []byte) (fsstate.Result, error) {
	if len(data) <= fsstate.MaxEntryData {
		return f.apply(ctx, &fsstate.Command{Op: fsstate.OpWrite, Cred: cred, Vol: vol, Ino: ino, Offset: off, Data: data})
	}
	release, err := f.reserve(vol, ino, off, uint64(len(data)))
	if err != nil {
		return fsstate.Result{}, err
	}
	defer release()
	now := fsstate.Time(f.now().UnixNano())
	req := requestFrom(ctx)
	var cmds []*fsstate.Command
	for start := 0; start < len(data); start += fsstate.MaxEntryData {
		end := min(start+fsstate.MaxEntryData, len(data))
		cmds = append(cmds, &fsstate.Command{Op: fsstate.OpWrite, Time: now, Cred: cred, Vol: vol, Ino: ino,
			Offset: off + uint64(start), Data: data[start:end], Req: entryRequest(req, len(cmds))})
	}
	f.writes.touch(vol)
	results, err := f.r.ApplyMany(ctx, cmds)
	if err != nil {
		return fsstate.Result{}, err
	}
	for _, r := range results {
		if r.Err != 0 {
			return r, r.Err
		}
	}
	res := results[len(results)-1]
	res.Obj.Pre = results[0].Obj.Pre
	return res, nil
}

// entryShift places, in the procedure number of a request id, the index
// (from 1) of one entry of a request split into several (bits 24-30; bit
// 31 is nfs3's follow-up SETATTR).
const entryShift = 24

// entryRequest is the request id of entry i of a request split into
// several: each has its own record, so that a resent request replays the
// entries that were made and makes the rest (one id for all would answer
// every entry after the first from the first one's record).
func entryRequest(req *fsstate.RequestID, i int) *fsstate.RequestID {
	if req == nil {
		return nil
	}
	r := *req
	r.Proc |= uint32(i+1) << entryShift
	return &r
}

// reserve holds n bytes of a volume's free space for a multi-entry write
// at off. Overwriting data a file already holds (no holes, within its size)
// needs no new space.
func (f *FS) reserve(vol, ino, off, n uint64) (func(), error) {
	st := f.r.Store()
	if st == nil {
		return nil, errors.New("fsapi: this node is a witness and holds no data")
	}
	if a, err := st.GetAttr(vol, ino); err == nil && a.Used >= a.Size && off+n <= a.Size {
		return func() {}, nil
	}
	v, err := st.VolumeByID(vol)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v.Used+f.reserved[vol]+n > v.SizeLimit {
		return nil, syscall.ENOSPC
	}
	f.reserved[vol] += n
	return func() {
		f.mu.Lock()
		f.reserved[vol] -= n
		if f.reserved[vol] == 0 {
			delete(f.reserved, vol)
		}
		f.mu.Unlock()
	}, nil
}

// GetAttr returns an inode's attributes.
func (f *FS) GetAttr(ctx context.Context, vol, ino uint64) (fsstate.Attr, error) {
	st, err := f.read(ctx)
	if err != nil {
		return fsstate.Attr{}, err
	}
	return st.GetAttr(vol, ino)
}

// Lookup finds name in dir.
func (f *FS) Lookup(ctx context.Context, vol, dir uint64, name string) (fsstate.Attr, error) {
	st, err := f.read(ctx)
	if err != nil {
		return fsstate.Attr{}, err
	}
	return st.Lookup(vol, dir, name)
}

// Read reads up to n bytes at off.
func (f *FS) Read(ctx context.Context, vol, ino, off uint64, n uint32) ([]byte, bool, error) {
	st, err := f.read(ctx)
	if err != nil {
		return nil, false, err
	}
	return st.Read(vol, ino, off, n)
}

// ReadDir lists entries after a cookie.
func (f *FS) ReadDir(ctx context.Context, vol, dir, after uint64, max int) ([]fsstate.DirEntry, bool, error) {
	st, err := f.read(ctx)
	if err != nil {
		return nil, false, err
	}
	return st.ReadDir(vol, dir, after, max)
}

// Readlink returns a symlink's target.
func (f *FS) Readlink(ctx context.Context, vol, ino uint64) (string, error) {
	st, err := f.read(ctx)
	if err != nil {
		return "", err
	}
	return st.Readlink(vol, ino)
}

// Access reports what cred may do with an inode.
func (f *FS) Access(ctx context.Context, vol, ino uint64, cred *fsstate.Cred) (read, write, exec bool, err error) {
	st, err := f.read(ctx)
	if err != nil {
		return false, false, false, err
	}
	return st.Access(vol, ino, cred)
}

// VolumeByID returns a volume by id.
func (f *FS) VolumeByID(ctx context.Context, id uint64) (fsstate.Volume, error) {
	st, err := f.read(ctx)
	if err != nil {
		return fsstate.Volume{}, err
	}
	return st.VolumeByID(id)
}

// Volumes lists the volumes.
func (f *FS) Volumes(ctx context.Context) ([]fsstate.Volume, error) {
	st, err := f.read(ctx)
	if err != nil {
		return nil, err
	}
	return st.Volumes()
}

// Volume returns a volume by name.
func (f *FS) Volume(ctx context.Context, name string) (fsstate.Volume, error) {
	st, err := f.read(ctx)
	if err != nil {
		return fsstate.Volume{}, err
	}
	return st.VolumeByName(name)
}

// View waits for the read-index barrier once and returns the leader's state
// to read from directly: a request that reads several things pays for one
// barrier.
func (f *FS) View(ctx context.Context) (*fsstate.Store, error) { return f.read(ctx) }

// Local returns this node's state without the read-index barrier. Changes
// use it to resolve names and handles before they are proposed: the state
// machine checks every change again when it applies it, so a slightly old
// view costs nothing but a precise error, and a write saves a round trip.
func (f *FS) Local() (*fsstate.Store, error) {
	st := f.r.Store()
	if st == nil {
		return nil, errors.New("fsapi: this node is a witness and holds no data")
	}
	return st, nil
}
