package fsapi

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"keel/internal/fsstate"
)

// RecentWriteWindow is how long after a write a volume counts as being
// written to: revert refuses such a volume unless forced.
const RecentWriteWindow = 30 * time.Second

// writeTracker remembers, on the leader, when each volume was last changed
// through this node.
type writeTracker struct {
	mu   sync.Mutex
	last map[uint64]time.Time
}

func (w *writeTracker) touch(vol uint64) {
	w.mu.Lock()
	if w.last == nil {
		w.last = map[uint64]time.Time{}
	}
	w.last[vol] = time.Now()
	w.mu.Unlock()
}

func (w *writeTracker) since(vol uint64) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.last[vol]
	return time.Since(t), ok
}

// CreateSnapshot takes a crash-consistent snapshot of a volume: every change
// before it is wholly in, every later one out.
func (f *FS) CreateSnapshot(ctx context.Context, vol, name string) (fsstate.SnapshotInfo, error) {
	if _, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpSnapshotCreate, VolName: vol, SnapName: name}); err != nil {
		return fsstate.SnapshotInfo{}, err
	}
	snaps, err := f.Snapshots(ctx, vol)
	if err != nil {
		return fsstate.SnapshotInfo{}, err
	}
	for _, s := range snaps {
		if s.Name == name {
			return s, nil
		}
	}
	return fsstate.SnapshotInfo{}, fmt.Errorf("fsapi: snapshot %s@%s vanished after it was made", vol, name)
}

// DeleteSnapshot deletes a snapshot.
func (f *FS) DeleteSnapshot(ctx context.Context, vol, name string) error {
	_, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpSnapshotDelete, VolName: vol, SnapName: name})
	return err
}

// Snapshots lists a volume's snapshots ("" for every volume's).
func (f *FS) Snapshots(ctx context.Context, vol string) ([]fsstate.SnapshotInfo, error) {
	st, err := f.read(ctx)
	if err != nil {
		return nil, err
	}
	var id uint64
	if vol != "" {
		v, err := st.VolumeByName(vol)
		if err != nil {
			return nil, err
		}
		id = v.ID
	}
	return st.Snapshots(id)
}

// CloneVolume makes a new volume from a snapshot (size 0: the source's).
func (f *FS) CloneVolume(ctx context.Context, vol, snap, newName string, size uint64) (fsstate.Volume, error) {
	res, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpVolumeClone, VolName: vol, SnapName: snap, ToName: newName, SizeLimit: size})
	return res.Volume, err
}

// ErrVolumeBusy says a volume was written to recently.
var ErrVolumeBusy = fmt.Errorf("fsapi: the volume was written to in the last %s: stop its clients, or force: %w", RecentWriteWindow, syscall.EBUSY)

// RevertVolume puts a snapshot's content back into its volume. It refuses a
// volume written to through this node in the last RecentWriteWindow unless
// force is set: clients holding files open would see them change under them.
func (f *FS) RevertVolume(ctx context.Context, vol, snap string, force bool) (fsstate.Volume, error) {
	if !force {
		if st := f.r.Store(); st != nil {
			if v, err := st.VolumeByName(vol); err == nil {
				if ago, ok := f.writes.since(v.ID); ok && ago < RecentWriteWindow {
					return fsstate.Volume{}, ErrVolumeBusy
				}
			}
		}
	}
	res, err := f.apply(ctx, &fsstate.Command{Op: fsstate.OpVolumeRevert, VolName: vol, SnapName: snap})
	return res.Volume, err
}
