package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
)

// Tree is a read-only view of a volume's files: in keel, the fsstate.Store
// of a volume snapshot (fsstate.Store.OpenSnapshot).
type Tree interface {
	GetAttr(vol, ino uint64) (fsstate.Attr, error)
	ReadDir(vol, dir, after uint64, max int) ([]fsstate.DirEntry, bool, error)
	Readlink(vol, ino uint64) (string, error)
	Read(vol, ino, off uint64, n uint32) ([]byte, bool, error)
}

// Source is what Push backs up: one volume of a Tree.
type Source struct {
	Tree     Tree
	Volume   fsstate.Volume // as the tree holds it (name, size limit, export)
	Snapshot Snapshot
	State    *StateImage // set for a node's state image (PushState)
}

// PushResult reports a finished push.
type PushResult struct {
	ID             string
	Volume         string
	Key            string // the manifest's key
	Snapshot       Snapshot
	Totals         Totals
	BytesScanned   uint64 // file data read from the snapshot
	BytesUnchanged uint64 // data of files unchanged since Options.Previous, not read again
	BytesUploaded  uint64 // bytes of new chunks stored
	ChunksUploaded int64
	ChunksReused   int64 // chunk references that needed no upload: stored before, or met earlier in this push
	ManifestBytes  int64
	Duration       time.Duration
	Warnings       []string
}

// readSize is how much file data one Read asks for.
const readSize = 16 * fsstate.ChunkSize

// PushVolume backs up volume name through fs, on the leader: it takes
// snapshot keel-backup-<id>, pushes it with Push, and deletes the snapshot.
func PushVolume(ctx context.Context, fs *fsapi.FS, name string, st Store, opts Options) (res *PushResult, err error) {
	if opts.ID == "" {
		opts.ID = NewID(time.Now())
	}
	snap := "keel-backup-" + opts.ID
	info, err := fs.CreateSnapshot(ctx, name, snap)
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot volume %s: %w", name, err)
	}
	defer func() {
		if derr := fs.DeleteSnapshot(context.WithoutCancel(ctx), name, snap); derr != nil {
			warning := fmt.Sprintf("the temporary snapshot %s@%s was not deleted (%v): delete it with `keel snapshot delete %s@%s`",
				name, snap, derr, name, snap)
			if res != nil {
				res.Warnings = append(res.Warnings, warning)
			} else if err != nil {
				err = fmt.Errorf("%w; %s", err, warning)
			}
		}
	}()
	local, err := fs.Local()
	if err != nil {
		return nil, err
	}
	tree, err := local.OpenSnapshot(info.Vol, snap)
	if err != nil {
		return nil, fmt.Errorf("backup: open snapshot %s@%s: %w", name, snap, err)
	}
	vol, err := tree.VolumeByID(info.Vol)
	if err != nil {
		return nil, fmt.Errorf("backup: volume %s in snapshot %s: %w", name, snap, err)
	}
	return Push(ctx, st, Source{Tree: tree, Volume: vol,
		Snapshot: Snapshot{Name: snap, RaftIndex: info.Index, Time: time.Unix(0, int64(info.Created)).UTC()}}, opts)
}

// lockBody is the content of locks/<id>.json, which marks a push in
// progress for Prune.
type lockBody struct {
	ID      string    `json:"id"`
	Volume  string    `json:"volume"`
	Started time.Time `json:"started"`
}

// Push backs up src into st: it uploads the chunks st does not hold yet,
// several at once, and once all of them are stored writes the manifest.
func Push(ctx context.Context, st Store, src Source, opts Options) (*PushResult, error) {
	cnt := newCounters("push")
	id := opts.ID
	if id == "" {
		id = NewID(cnt.start)
	}
	if !ValidID(id) {
		return nil, fmt.Errorf("backup: bad backup id %q", id)
	}
	lock, _ := json.Marshal(lockBody{ID: id, Volume: src.Volume.Name, Started: cnt.start.UTC()})
	if err := st.Put(ctx, lockKey(id), bytes.NewReader(lock), int64(len(lock))); err != nil {
		return nil, fmt.Errorf("backup: cannot write to the backup store: %w", err)
	}
	defer func() { _ = st.Delete(context.WithoutCancel(ctx), lockKey(id)) }()
	have, err := storedChunks(ctx, st)
	if err != nil {
		return nil, err
	}
	e := src.Volume.Export
	p := &pusher{src: src, st: st, cnt: cnt, have: have, mine: map[[32]byte]struct{}{}, links: map[uint64]int{},
		prev: previousFiles(opts.Previous, src),
		m: &Manifest{Format: FormatVersion, ID: id, Volume: src.Volume.Name, VolumeID: src.Volume.ID,
			SizeLimit: src.Volume.SizeLimit, Snapshot: src.Snapshot, ChunkSize: fsstate.ChunkSize,
			Export: Export{Clients: append([]string{}, e.Clients...), ReadOnly: e.ReadOnly, Squash: e.Squash.String(),
				AnonUID: e.AnonUID, AnonGID: e.AnonGID}}}
	if src.State != nil {
		p.m.Kind, p.m.State = KindState, src.State
	}
	cnt.total.Store(src.Volume.Used)
	stop := cnt.report(opts)
	g := newGroup(ctx)
	jobs := make(chan upload, 4*opts.workers())
	for range opts.workers() {
		g.Go(func(ctx context.Context) error { return p.upload(ctx, jobs) })
	}
	g.Go(func(ctx context.Context) error {
		defer close(jobs)
		return p.walk(ctx, jobs)
	})
	err = g.Wait()
	stop()
	if err != nil {
		return nil, fmt.Errorf("backup: push of %s stopped, no backup was made: %w", src.Volume.Name, err)
	}
	if err := syncStore(ctx, st); err != nil {
		return nil, err
	}
	m := p.m
	m.Totals.Inodes = int64(len(m.Inodes))
	if opts.SkipUnchanged && opts.Previous != nil && sameTree(opts.Previous, m) {
		return nil, fmt.Errorf("%w (backup %s of %s)", ErrUnchanged, opts.Previous.ID, m.Volume)
	}
	m.Written = time.Now().UTC()
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	key := ManifestKey(m.Volume, m.ID)
	if err := st.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, fmt.Errorf("backup: write manifest %s (the chunks are stored; a new push reuses them): %w", key, err)
	}
	if err := syncStore(ctx, st); err != nil {
		return nil, err
	}
	return &PushResult{ID: id, Volume: m.Volume, Key: key, Snapshot: m.Snapshot, Totals: m.Totals,
		BytesScanned: cnt.bytes.Load(), BytesUnchanged: cnt.skipped.Load(), BytesUploaded: cnt.uploaded.Load(), ChunksUploaded: p.uploaded,
		ChunksReused: m.Totals.Chunks - p.uploaded, ManifestBytes: int64(len(b)), Duration: time.Since(cnt.start)}, nil
}

// storedChunks lists the chunks a store holds.
func storedChunks(ctx context.Context, st Store) (map[[32]byte]struct{}, error) {
	keys, err := st.List(ctx, chunkPrefix)
	if err != nil {
		return nil, fmt.Errorf("backup: list stored chunks: %w", err)
	}
	have := make(map[[32]byte]struct{}, len(keys))
	for _, k := range keys {
		if h := hashFromChunkKey(k); h != "" {
			var sum [32]byte
			_, _ = hex.Decode(sum[:], []byte(h))
			have[sum] = struct{}{}
		}
	}
	return have, nil
}

type upload struct {
	hash string
	data []byte
}

type pusher struct {
	src      Source
	st       Store
	cnt      *counters
	m        *Manifest
	have     map[[32]byte]struct{} // stored before, or queued by this push
	mine     map[[32]byte]struct{} // referenced by this backup
	links    map[uint64]int        // inode → index in m.Inodes, for files with several links
	prev     map[uint64]*Inode     // files of the previous backup by inode (Options.Previous)
	uploaded int64                 // chunks queued for upload
}

func (p *pusher) upload(ctx context.Context, jobs <-chan upload) error {
	for j := range jobs {
		if err := p.st.Put(ctx, ChunkKey(j.hash), bytes.NewReader(j.data), int64(len(j.data))); err != nil {
			return fmt.Errorf("upload chunk %s: %w", ChunkKey(j.hash), err)
		}
		p.cnt.uploaded.Add(uint64(len(j.data)))
	}
	return nil
}

func fsTime(t fsstate.Time) time.Time { return time.Unix(0, int64(t)).UTC() }

// add appends an inode to the manifest and returns its index.
func (p *pusher) add(a fsstate.Attr, path Name) int {
	n := Inode{Ino: a.Ino, Paths: []Name{path}, Mode: a.Mode, UID: a.UID, GID: a.GID,
		Atime: fsTime(a.Atime), Mtime: fsTime(a.Mtime), Ctime: fsTime(a.Ctime)}
	t := &p.m.Totals
	switch a.Type {
	case fsstate.TypeDir:
		n.Type = TypeDir
		t.Dirs++
	case fsstate.TypeSymlink:
		n.Type = TypeSymlink
		t.Symlinks++
	default:
		n.Type, n.Size = TypeFile, a.Size
		t.Files++
		t.Bytes += a.Size
		p.cnt.files.Add(1)
	}
	p.m.Inodes = append(p.m.Inodes, n)
	return len(p.m.Inodes) - 1
}

type dirRef struct {
	ino  uint64
	path Name
}

// walk lists the tree breadth first, so that every directory comes before
// its entries, reads each file once and queues its new chunks.
func (p *pusher) walk(ctx context.Context, jobs chan<- upload) error {
	vol := p.src.Volume.ID
	root, err := p.src.Tree.GetAttr(vol, fsstate.RootIno)
	if err != nil {
		return fmt.Errorf("read the root directory: %w", err)
	}
	p.add(root, "/")
	queue := []dirRef{{fsstate.RootIno, "/"}}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for after := uint64(0); ; {
			ents, eof, err := p.src.Tree.ReadDir(vol, d.ino, after, 1024)
			if err != nil {
				return fmt.Errorf("list %s: %w", d.path, err)
			}
			for _, e := range ents {
				after = e.Cookie
				path := joinPath(d.path, e.Name)
				if e.Attr.Type == fsstate.TypeRegular && e.Attr.Nlink > 1 {
					if i, ok := p.links[e.Ino]; ok {
						p.m.Inodes[i].Paths = append(p.m.Inodes[i].Paths, path)
						p.m.Totals.HardLinks++
						continue
					}
					p.links[e.Ino] = len(p.m.Inodes)
				}
				i := p.add(e.Attr, path)
				switch e.Attr.Type {
				case fsstate.TypeDir:
					queue = append(queue, dirRef{e.Ino, path})
				case fsstate.TypeSymlink:
					t, err := p.src.Tree.Readlink(vol, e.Ino)
					if err != nil {
						return fmt.Errorf("read symlink %s: %w", path, err)
					}
					p.m.Inodes[i].Target = Name(t)
				default:
					if err := p.readFile(ctx, i, e.Attr, jobs); err != nil {
						return fmt.Errorf("read %s: %w", path, err)
					}
				}
			}
			if eof || len(ents) == 0 {
				break
			}
		}
	}
	return nil
}

var zeroChunk [fsstate.ChunkSize]byte

// readFile reads a file's data in chunks: all-zero chunks are holes, the
// rest are hashed, recorded and, if the store lacks them, queued.
func (p *pusher) readFile(ctx context.Context, i int, a fsstate.Attr, jobs chan<- upload) error {
	if a.Used == 0 {
		return nil // nothing stored: all holes
	}
	t := &p.m.Totals
	if old, ok := p.prev[a.Ino]; ok && old.Size == a.Size && old.Mtime.Equal(fsTime(a.Mtime)) && old.Ctime.Equal(fsTime(a.Ctime)) {
		if p.reuse(i, old) {
			return nil
		}
	}
	var chunks []Chunk
	off := uint64(0)
	for off < a.Size {
		data, eof, err := p.src.Tree.Read(p.src.Volume.ID, a.Ino, off, readSize)
		if err != nil {
			return err
		}
		p.cnt.bytes.Add(uint64(len(data)))
		for k := 0; k < len(data); k += fsstate.ChunkSize {
			b := data[k:min(k+fsstate.ChunkSize, len(data))]
			if bytes.Equal(b, zeroChunk[:len(b)]) {
				continue
			}
			sum := sha256.Sum256(b)
			h := hex.EncodeToString(sum[:])
			chunks = append(chunks, Chunk{Off: off + uint64(k), Len: uint32(len(b)), Hash: h})
			t.Chunks++
			t.DataBytes += uint64(len(b))
			if _, ok := p.mine[sum]; !ok {
				p.mine[sum] = struct{}{}
				t.Distinct++
				t.DistinctB += uint64(len(b))
			}
			if _, ok := p.have[sum]; ok {
				continue
			}
			p.have[sum] = struct{}{}
			p.uploaded++
			select {
			case jobs <- upload{hash: h, data: b}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(data) == 0 && !eof {
			return fmt.Errorf("empty read at %d of %d bytes", off, a.Size)
		}
		off += uint64(len(data))
		if eof {
			break
		}
	}
	if off != a.Size {
		return fmt.Errorf("read %d bytes of a %d-byte file", off, a.Size)
	}
	p.m.Inodes[i].Chunks = chunks
	return nil
}

// previousFiles indexes the regular files of prev by inode, if prev is a
// backup of the same volume (the same volume id: inode numbers are never
// reused within a volume).
func previousFiles(prev *Manifest, src Source) map[uint64]*Inode {
	if prev == nil || prev.VolumeID != src.Volume.ID || prev.Volume != src.Volume.Name || prev.Kind != "" || src.State != nil {
		return nil
	}
	out := make(map[uint64]*Inode, len(prev.Inodes))
	for i := range prev.Inodes {
		if n := &prev.Inodes[i]; n.Type == TypeFile {
			out[n.Ino] = n
		}
	}
	return out
}

// reuse gives inode i the chunks of the unchanged file old, if the store
// still holds every one of them (a prune may have removed some).
func (p *pusher) reuse(i int, old *Inode) bool {
	for _, c := range old.Chunks {
		if _, ok := p.have[hashBytes(c.Hash)]; !ok {
			return false
		}
	}
	t := &p.m.Totals
	for _, c := range old.Chunks {
		sum := hashBytes(c.Hash)
		t.Chunks++
		t.DataBytes += uint64(c.Len)
		if _, ok := p.mine[sum]; !ok {
			p.mine[sum] = struct{}{}
			t.Distinct++
			t.DistinctB += uint64(c.Len)
		}
	}
	p.m.Inodes[i].Chunks = append([]Chunk(nil), old.Chunks...)
	p.cnt.skipped.Add(old.Size)
	return true
}

// sameTree reports whether two backups of a volume hold the same tree:
// the same inodes with the same names, attributes and data, and the same
// volume settings.
func sameTree(a, b *Manifest) bool {
	if a.VolumeID != b.VolumeID || a.Volume != b.Volume || a.SizeLimit != b.SizeLimit || len(a.Inodes) != len(b.Inodes) ||
		a.Totals != b.Totals || !slices.Equal(a.Export.Clients, b.Export.Clients) || a.Export.ReadOnly != b.Export.ReadOnly ||
		a.Export.Squash != b.Export.Squash || a.Export.AnonUID != b.Export.AnonUID || a.Export.AnonGID != b.Export.AnonGID {
		return false
	}
	for i := range a.Inodes {
		x, y := &a.Inodes[i], &b.Inodes[i]
		if x.Ino != y.Ino || x.Type != y.Type || x.Mode != y.Mode || x.UID != y.UID || x.GID != y.GID || x.Size != y.Size ||
			x.Target != y.Target || !x.Mtime.Equal(y.Mtime) || !x.Ctime.Equal(y.Ctime) || !x.Atime.Equal(y.Atime) ||
			!slices.Equal(x.Paths, y.Paths) || !slices.Equal(x.Chunks, y.Chunks) {
			return false
		}
	}
	return true
}
