package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
)

// RestoreResult reports a finished restore.
type RestoreResult struct {
	ID           string
	Volume       string // the backed-up volume
	Restored     string // the volume made
	SizeLimit    uint64
	Totals       Totals
	BytesWritten uint64
	Duration     time.Duration
}

// writeBatch is the most file data one Write carries.
const writeBatch = 4 << 20

// Restore makes volume name (size limit size; 0: the backup's) with the
// tree of backup m, through fs on the leader. It refuses an existing
// volume, checks that every chunk is present before it creates anything,
// and checks each chunk's hash before writing its data; on any failure it
// deletes the volume it made, so a restore is whole or absent.
//
// Restored: directories, files with their data (holes stay holes),
// symlinks, hard links, modes, owners, atime and mtime. Ctime is the
// restore's time (no API sets it); the export is the default one (the
// source's is in the manifest).
func Restore(ctx context.Context, fs *fsapi.FS, st Store, m *Manifest, name string, size uint64, opts Options) (res *RestoreResult, err error) {
	if m.Kind == KindState {
		return nil, fmt.Errorf("backup: %s is a node's state image, not a volume backup: it rebuilds a data node "+
			"(seed_from in the node's config); restore a volume from one of its volume backups (see `keel backup list`)", m.ID)
	}
	cnt := newCounters("restore")
	if size == 0 {
		size = max(m.SizeLimit, m.Totals.DataBytes)
	}
	if size < m.Totals.DataBytes {
		return nil, fmt.Errorf("backup: --size %d is below the %d bytes of data backup %s holds", size, m.Totals.DataBytes, m.ID)
	}
	if _, err := fs.Volume(ctx, name); err == nil {
		return nil, fmt.Errorf("backup: volume %s exists: restore into a new volume name, or delete it first: %w", name, syscall.EEXIST)
	} else if !errors.Is(err, syscall.ENOENT) {
		return nil, err
	}
	// Every chunk present, before anything is made.
	have, err := storedChunks(ctx, st)
	if err != nil {
		return nil, err
	}
	for _, n := range m.Inodes {
		for _, c := range n.Chunks {
			if _, ok := have[hashBytes(c.Hash)]; !ok {
				return nil, fmt.Errorf("backup: restore refused, nothing was changed: %w: %s (data of %s at offset %d)",
					ErrMissing, ChunkKey(c.Hash), n.Paths[0], c.Off)
			}
		}
	}
	vol, err := fs.CreateVolume(ctx, name, size)
	if err != nil {
		if errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("backup: volume %s exists: restore into a new volume name, or delete it first: %w", name, err)
		}
		return nil, fmt.Errorf("backup: create volume %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			if derr := fs.DeleteVolume(context.WithoutCancel(ctx), name, true); derr != nil {
				err = fmt.Errorf("%w; the partly restored volume %s could not be deleted (%v): delete it with `keel volume delete %s --force`", err, name, derr, name)
			} else {
				err = fmt.Errorf("%w; the partly restored volume %s was deleted", err, name)
			}
		}
	}()
	cnt.total.Store(m.Totals.DataBytes)
	stop := cnt.report(opts)
	defer stop()
	r := &restorer{fs: fs, st: st, m: m, vol: vol.ID, cnt: cnt, dirs: map[Name]uint64{"/": fsstate.RootIno}, inos: make([]uint64, len(m.Inodes))}
	r.inos[0] = fsstate.RootIno
	if err := r.run(ctx, opts.workers()); err != nil {
		return nil, fmt.Errorf("backup: restore of %s into %s aborted: %w", m.ID, name, err)
	}
	stop()
	return &RestoreResult{ID: m.ID, Volume: m.Volume, Restored: name, SizeLimit: size, Totals: m.Totals,
		BytesWritten: cnt.bytes.Load(), Duration: time.Since(cnt.start)}, nil
}

func hashBytes(h string) (sum [32]byte) {
	for i := range sum {
		sum[i] = unhex(h[2*i])<<4 | unhex(h[2*i+1])
	}
	return sum
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

type restorer struct {
	fs   *fsapi.FS
	st   Store
	m    *Manifest
	vol  uint64
	cnt  *counters
	dirs map[Name]uint64 // directory path → inode in the new volume
	inos []uint64        // manifest index → inode in the new volume
}

func (r *restorer) run(ctx context.Context, workers int) error {
	// Directories, parents first (the manifest's order).
	for i, n := range r.m.Inodes[1:] {
		if n.Type != TypeDir {
			continue
		}
		ino, err := r.create(ctx, n, n.Paths[0], fsstate.TypeDir)
		if err != nil {
			return err
		}
		r.dirs[n.Paths[0]] = ino
		r.inos[i+1] = ino
	}
	// Files and symlinks, with chunks fetched and checked ahead in order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := fetchOrdered(ctx, r.st, workers, func(yield func(Chunk) bool) {
		for _, n := range r.m.Inodes {
			if n.Type != TypeFile {
				continue
			}
			for _, c := range n.Chunks {
				if !yield(c) {
					return
				}
			}
		}
	})
	defer func() {
		cancel()
		for range order { // let the fetcher end
		}
	}()
	for i, n := range r.m.Inodes {
		switch n.Type {
		case TypeSymlink:
			ino, err := r.create(ctx, n, n.Paths[0], fsstate.TypeSymlink)
			if err != nil {
				return err
			}
			r.inos[i] = ino
			if err := r.setAttr(ctx, n, ino, nil); err != nil {
				return err
			}
		case TypeFile:
			ino, err := r.create(ctx, n, n.Paths[0], fsstate.TypeRegular)
			if err != nil {
				return err
			}
			r.inos[i] = ino
			if err := r.writeData(ctx, n, ino, order); err != nil {
				return err
			}
			if err := r.setAttr(ctx, n, ino, &n.Size); err != nil {
				return err
			}
			r.cnt.files.Add(1)
		}
	}
	// Further names of hard-linked files, then the directories' attributes
	// (linking changes a directory's mtime).
	for i, n := range r.m.Inodes {
		for _, p := range n.Paths[1:] {
			parent, base, err := splitPath(p)
			if err != nil {
				return err
			}
			if _, err := r.fs.Link(ctx, nil, r.vol, r.inos[i], r.dirs[parent], base); err != nil {
				return fmt.Errorf("link %s to %s: %w", p, n.Paths[0], err)
			}
		}
	}
	for i, n := range r.m.Inodes {
		if n.Type == TypeDir {
			if err := r.setAttr(ctx, n, r.inos[i], nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *restorer) create(ctx context.Context, n Inode, p Name, t fsstate.FileType) (uint64, error) {
	parent, base, err := splitPath(p)
	if err != nil {
		return 0, err
	}
	res, err := r.fs.Create(ctx, nil, fsapi.CreateArgs{Vol: r.vol, Dir: r.dirs[parent], Name: base, Type: t,
		Mode: n.Mode, UID: n.UID, GID: n.GID, Target: string(n.Target), CreateMode: fsstate.CreateGuarded})
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", p, err)
	}
	return res.Attr.Ino, nil
}

// setAttr gives an inode its mode, owner and times (and a file its size,
// which extends it over trailing holes).
func (r *restorer) setAttr(ctx context.Context, n Inode, ino uint64, size *uint64) error {
	mode, uid, gid := n.Mode, n.UID, n.GID
	at, mt := fsstate.Time(n.Atime.UnixNano()), fsstate.Time(n.Mtime.UnixNano())
	set := fsstate.SetAttr{Mode: &mode, UID: &uid, GID: &gid, Atime: &at, Mtime: &mt, Size: size}
	if _, err := r.fs.SetAttr(ctx, nil, r.vol, ino, set, nil); err != nil {
		return fmt.Errorf("set the attributes of %s: %w", n.Paths[0], err)
	}
	return nil
}

// writeData writes a file's chunks as they arrive, checked, from order;
// adjacent chunks are written together.
func (r *restorer) writeData(ctx context.Context, n Inode, ino uint64, order <-chan chan fetched) error {
	var buf []byte
	var at uint64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := r.fs.Write(ctx, nil, r.vol, ino, at, buf); err != nil {
			return fmt.Errorf("write %s at %d: %w", n.Paths[0], at, err)
		}
		r.cnt.bytes.Add(uint64(len(buf)))
		buf = buf[:0]
		return nil
	}
	for _, c := range n.Chunks {
		data, err := nextChunk(ctx, order, n, c)
		if err != nil {
			return err
		}
		// Zeros at a chunk's end stay holes, so that the restored file
		// takes no more space than the original did.
		data = bytes.TrimRight(data, "\x00")
		if len(buf) > 0 && (at+uint64(len(buf)) != c.Off || len(buf)+len(data) > writeBatch) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			at = c.Off
		}
		buf = append(buf, data...)
	}
	return flush()
}
