package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"keel/internal/fsstate"
)

// A state image is a backup of a data node's whole replicated state (every
// volume, its snapshots, the duplicate request cache) at one raft index: the
// files of a pinned raft snapshot (a Pebble checkpoint). It is stored like
// a volume backup (the same chunks, so SST files unchanged since the last
// image cost nothing; a manifest of the tree written last) under the
// pseudo-volume StateVolume, and it is what a replacement node seeds its
// state from before it catches up from the leader with only the entries
// after the image's index (FetchState; internal/node's seed_from).
const (
	KindState   = "state"
	StateVolume = "@state"
)

// StateImage is what a state image records besides its files.
type StateImage struct {
	ClusterID string `json:"cluster_id"` // a node of another cluster refuses it
	RaftIndex uint64 `json:"raft_index"`
	RaftTerm  uint64 `json:"raft_term"`
	// Meta is the replication layer's snapshot metadata (raft
	// configuration included), opaque to this package.
	Meta json.RawMessage `json:"meta"`
}

// PushState backs up the state image in directory dir, which nothing may
// change while it is read (a pinned snapshot).
func PushState(ctx context.Context, st Store, dir string, img StateImage, opts Options) (*PushResult, error) {
	if img.ClusterID == "" {
		return nil, errors.New("backup: a state image needs its cluster id")
	}
	tree, err := newDirTree(dir)
	if err != nil {
		return nil, err
	}
	root, _ := tree.GetAttr(0, fsstate.RootIno)
	return Push(ctx, st, Source{Tree: tree, Volume: fsstate.Volume{Name: StateVolume}, State: &img,
		Snapshot: Snapshot{Name: "raft-snapshot", RaftIndex: img.RaftIndex, Time: fsTime(root.Mtime)}}, opts)
}

// FindState returns state image id, or with id "" the newest, of cluster
// clusterID ("": of any cluster, for making a new cluster from it).
func FindState(ctx context.Context, st Store, id, clusterID string) (*Manifest, error) {
	m, err := Find(ctx, st, id, StateVolume)
	if err != nil {
		if errors.Is(err, ErrNoBackup) && id == "" {
			return nil, fmt.Errorf("%w: %s holds no state image of a node: push one with `keel backup push --state --to URL` "+
				"(or schedule one in the config) before a node can be rebuilt from it", ErrNoBackup, storeName(st))
		}
		return nil, err
	}
	if m.Kind != KindState {
		return nil, fmt.Errorf("backup: %s is a backup of volume %s, not a node's state image", m.ID, m.Volume)
	}
	if clusterID != "" && m.State.ClusterID != clusterID {
		return nil, fmt.Errorf("backup: state image %s belongs to cluster %s, this node to cluster %s: seed it from a backup of its own cluster",
			m.ID, m.State.ClusterID, clusterID)
	}
	return m, nil
}

// FetchState writes the files of state image m into dir (which must not
// exist; it is made), checking every chunk, and syncs them. On error dir
// is removed: it holds the whole image or nothing.
func FetchState(ctx context.Context, st Store, m *Manifest, dir string, opts Options) (err error) {
	if m.Kind != KindState {
		return fmt.Errorf("backup: %s is not a state image", m.ID)
	}
	have, err := storedChunks(ctx, st)
	if err != nil {
		return err
	}
	for _, n := range m.Inodes {
		for _, c := range n.Chunks {
			if _, ok := have[hashBytes(c.Hash)]; !ok {
				return fmt.Errorf("backup: state image %s cannot be used: %w: %s (data of %s at offset %d)",
					m.ID, ErrMissing, ChunkKey(c.Hash), n.Paths[0], c.Off)
			}
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	cnt := newCounters("seed")
	cnt.total.Store(m.Totals.DataBytes)
	stop := cnt.report(opts)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := fetchOrdered(ctx, st, opts.workers(), func(yield func(Chunk) bool) {
		for _, n := range m.Inodes {
			for _, c := range n.Chunks {
				if !yield(c) {
					return
				}
			}
		}
	})
	defer func() {
		cancel()
		for range order {
		}
	}()
	local := func(p Name) string { return filepath.Join(dir, filepath.FromSlash(string(p))) }
	var dirs []string
	for _, n := range m.Inodes { // directories first: hard links may cross them
		if n.Type != TypeDir {
			continue
		}
		if n.Paths[0] != "/" {
			if err := os.Mkdir(local(n.Paths[0]), 0o700); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
		}
		dirs = append(dirs, local(n.Paths[0]))
	}
	for _, n := range m.Inodes {
		switch n.Type {
		case TypeDir:
		case TypeFile:
			if err := writeLocalFile(ctx, local(n.Paths[0]), n, order, cnt); err != nil {
				return fmt.Errorf("backup: state image %s: %w", m.ID, err)
			}
			cnt.files.Add(1)
		default:
			return fmt.Errorf("backup: state image %s holds a %s (%s)", m.ID, n.Type, n.Paths[0])
		}
	}
	for _, n := range m.Inodes {
		for _, p := range n.Paths[1:] {
			if err := os.Link(local(n.Paths[0]), local(p)); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncPath(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeLocalFile writes file n from the checked chunks that order delivers
// and fsyncs it; ranges without a chunk stay holes.
func writeLocalFile(ctx context.Context, path string, n Inode, order <-chan chan fetched, cnt *counters) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, c := range n.Chunks {
		data, err := nextChunk(ctx, order, n, c)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(data, int64(c.Off)); err != nil {
			return err
		}
		cnt.bytes.Add(uint64(len(data)))
	}
	if err := f.Truncate(int64(n.Size)); err != nil {
		return err
	}
	if err := os.Chtimes(path, time.Time{}, n.Mtime); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func syncPath(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", p, err)
	}
	return nil
}
