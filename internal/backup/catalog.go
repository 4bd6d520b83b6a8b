package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// backupRef is a manifest's key, split.
type backupRef struct {
	Volume, ID, Key string
}

// listBackups returns the manifests in a store by volume, then id.
func listBackups(ctx context.Context, st Store) ([]backupRef, error) {
	keys, err := st.List(ctx, manifestPrefix)
	if err != nil {
		return nil, fmt.Errorf("backup: list backups: %w", err)
	}
	var out []backupRef
	for _, k := range keys {
		if v, id, ok := parseManifestKey(k); ok {
			out = append(out, backupRef{v, id, k})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Volume != out[j].Volume {
			return out[i].Volume < out[j].Volume
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// older orders backups of one volume: by snapshot time, then raft index,
// then id (ids have one-second resolution).
func older(a, b *Manifest) bool {
	if !a.Snapshot.Time.Equal(b.Snapshot.Time) {
		return a.Snapshot.Time.Before(b.Snapshot.Time)
	}
	if a.Snapshot.RaftIndex != b.Snapshot.RaftIndex {
		return a.Snapshot.RaftIndex < b.Snapshot.RaftIndex
	}
	return a.ID < b.ID
}

// Summary describes one backup in a listing.
type Summary struct {
	ID          string
	Volume      string
	Time        time.Time // the snapshot's
	RaftIndex   uint64
	Files       int64
	Bytes       uint64 // sum of file sizes
	DataBytes   uint64 // bytes of file data stored (holes excluded)
	UniqueBytes uint64 // bytes of chunks no other backup in the store uses: what pruning it alone frees
	Err         string // set when the manifest cannot be read
}

// List describes every backup in a store, by volume and time.
func List(ctx context.Context, st Store) ([]Summary, error) {
	ms, bad, err := loadAll(ctx, st)
	if err != nil {
		return nil, err
	}
	users := map[string]int{} // chunk → backups using it
	for _, m := range ms {
		for h := range chunkSet(m) {
			users[h]++
		}
	}
	var out []Summary
	for _, m := range ms {
		s := Summary{ID: m.ID, Volume: m.Volume, Time: m.Snapshot.Time, RaftIndex: m.Snapshot.RaftIndex,
			Files: m.Totals.Files, Bytes: m.Totals.Bytes, DataBytes: m.Totals.DataBytes}
		for h, l := range chunkSet(m) {
			if users[h] == 1 {
				s.UniqueBytes += uint64(l)
			}
		}
		out = append(out, s)
	}
	for _, b := range bad {
		out = append(out, Summary{ID: b.ref.ID, Volume: b.ref.Volume, Err: b.err.Error()})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Volume != out[j].Volume {
			return out[i].Volume < out[j].Volume
		}
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

type badManifest struct {
	ref backupRef
	err error
}

// loadAll reads every manifest; damaged ones are returned apart, other
// errors (the store failing) end it.
func loadAll(ctx context.Context, st Store) ([]*Manifest, []badManifest, error) {
	refs, err := listBackups(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	var ms []*Manifest
	var bad []badManifest
	for _, r := range refs {
		m, err := LoadManifest(ctx, st, r.Key)
		switch {
		case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMissing):
			bad = append(bad, badManifest{r, err})
		case err != nil:
			return nil, nil, err
		default:
			ms = append(ms, m)
		}
	}
	return ms, bad, nil
}

// chunkSet returns the distinct chunks a backup uses, with their lengths.
func chunkSet(m *Manifest) map[string]uint32 {
	set := map[string]uint32{}
	for _, n := range m.Inodes {
		for _, c := range n.Chunks {
			set[c.Hash] = c.Len
		}
	}
	return set
}

// Find returns backup id, or with id "" the latest backup of volume (of
// the only volume the store holds backups of, if volume is "").
func Find(ctx context.Context, st Store, id, volume string) (*Manifest, error) {
	refs, err := listBackups(ctx, st)
	if err != nil {
		return nil, err
	}
	if id != "" {
		for _, r := range refs {
			if r.ID == id && (volume == "" || r.Volume == volume) {
				return LoadManifest(ctx, st, r.Key)
			}
		}
		return nil, fmt.Errorf("%w %s in %s: see `keel backup list`", ErrNoBackup, id, storeName(st))
	}
	vols := map[string]bool{}
	var cands []backupRef
	for _, r := range refs {
		if volume == "" && r.Volume != StateVolume || r.Volume == volume {
			vols[r.Volume] = true
			cands = append(cands, r)
		}
	}
	switch {
	case len(cands) == 0 && volume != "":
		return nil, fmt.Errorf("%w of volume %s in %s", ErrNoBackup, volume, storeName(st))
	case len(cands) == 0:
		return nil, fmt.Errorf("%w in %s", ErrNoBackup, storeName(st))
	case len(vols) > 1:
		var names []string
		for v := range vols {
			names = append(names, v)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%s holds backups of volumes %s: name the backup as URL@ID (see `keel backup list`) or the volume with --from",
			storeName(st), strings.Join(names, ", "))
	}
	// The latest: ids sort by the second, so read those of the last second
	// and order them exactly. A damaged latest manifest is an error, not a
	// reason to restore an older backup unasked.
	sec := cands[len(cands)-1].ID[:len(idLayout)]
	var best *Manifest
	for _, r := range cands {
		if !strings.HasPrefix(r.ID, sec) {
			continue
		}
		m, err := LoadManifest(ctx, st, r.Key)
		if err != nil {
			return nil, fmt.Errorf("the latest backup cannot be read (%w): name an older one as URL@ID", err)
		}
		if best == nil || older(best, m) {
			best = m
		}
	}
	return best, nil
}

// PruneOptions say which backups Prune keeps, for each volume.
type PruneOptions struct {
	KeepLast  int  // the newest N
	KeepDaily int  // the newest of each of the last N days (UTC) that have backups
	DryRun    bool // report only
	// Volume, if set, limits the deletions to that volume's backups (or
	// StateVolume's: the state images); the others are all kept.
	Volume string
}

// PruneResult reports what Prune did (or would do).
type PruneResult struct {
	Kept          []string // volume/id
	Deleted       []string // volume/id
	ChunksDeleted int64
	BytesFreed    uint64
	StaleRemoved  int // leftovers of dead uploads removed (Sweeper)
	DryRun        bool
}

// lockMaxAge is how long a push's lock keeps Prune away; an older lock is
// taken to be left by a push that died.
const lockMaxAge = 24 * time.Hour

// Prune deletes the backups the options do not keep, then every chunk no
// kept backup uses. It refuses to run while a push to the store is in
// progress (a lock younger than a day) and when a manifest cannot be read:
// it could not know which chunks that backup needs.
func Prune(ctx context.Context, st Store, o PruneOptions) (*PruneResult, error) {
	if o.KeepLast <= 0 && o.KeepDaily <= 0 {
		return nil, errors.New("backup: prune needs --keep-last N and/or --keep-daily N (N ≥ 1): it never deletes every backup")
	}
	if err := checkLocks(ctx, st); err != nil {
		return nil, err
	}
	ms, bad, err := loadAll(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("backup: prune stopped before deleting anything: %w; check it with `keel backup verify`, "+
			"and if it is beyond repair delete that object by hand, then prune again", bad[0].err)
	}
	byVol := map[string][]*Manifest{}
	for _, m := range ms {
		byVol[m.Volume] = append(byVol[m.Volume], m)
	}
	res := &PruneResult{DryRun: o.DryRun}
	used := map[string]bool{}
	var drop []*Manifest
	vols := make([]string, 0, len(byVol))
	for v := range byVol {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		list := byVol[v]
		if o.Volume != "" && v != o.Volume {
			for _, m := range list {
				for h := range chunkSet(m) {
					used[h] = true
				}
			}
			continue
		}
		sort.Slice(list, func(i, j int) bool { return older(list[j], list[i]) }) // newest first
		days := map[string]bool{}
		for i, m := range list {
			keep := i < o.KeepLast
			if day := m.Snapshot.Time.UTC().Format(time.DateOnly); !days[day] && len(days) < o.KeepDaily {
				days[day] = true
				keep = true
			}
			if keep {
				res.Kept = append(res.Kept, m.Volume+"/"+m.ID)
				for h := range chunkSet(m) {
					used[h] = true
				}
			} else {
				res.Deleted = append(res.Deleted, m.Volume+"/"+m.ID)
				drop = append(drop, m)
			}
		}
	}
	if !o.DryRun {
		for _, m := range drop {
			if err := st.Delete(ctx, ManifestKey(m.Volume, m.ID)); err != nil {
				return res, fmt.Errorf("backup: delete backup %s/%s: %w", m.Volume, m.ID, err)
			}
		}
	}
	keys, err := st.List(ctx, chunkPrefix)
	if err != nil {
		return res, fmt.Errorf("backup: list chunks: %w", err)
	}
	for _, k := range keys {
		h := hashFromChunkKey(k)
		if h == "" || used[h] {
			continue
		}
		size, ok, err := st.Stat(ctx, k)
		if err != nil {
			return res, err
		}
		if !o.DryRun {
			if err := st.Delete(ctx, k); err != nil {
				return res, fmt.Errorf("backup: delete %s: %w", k, err)
			}
		}
		if ok {
			res.ChunksDeleted++
			res.BytesFreed += uint64(size)
		}
	}
	if sw, ok := st.(Sweeper); ok && !o.DryRun {
		if res.StaleRemoved, err = sw.SweepStale(ctx, lockMaxAge); err != nil {
			return res, fmt.Errorf("backup: remove what dead uploads left: %w", err)
		}
	}
	return res, nil
}

// checkLocks fails if a push to the store started less than lockMaxAge ago
// and has not ended.
func checkLocks(ctx context.Context, st Store) error {
	keys, err := st.List(ctx, lockPrefix)
	if err != nil {
		return fmt.Errorf("backup: list locks: %w", err)
	}
	for _, k := range keys {
		rc, err := st.Get(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		var l lockBody
		err = json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&l)
		rc.Close()
		if err == nil && time.Since(l.Started) > lockMaxAge {
			continue
		}
		return fmt.Errorf("backup: a push of volume %s (backup %s) to this store started at %s and has not ended (lock %s): "+
			"prune again once it is done, or delete the lock if that push died", l.Volume, l.ID, l.Started.Format(time.RFC3339), k)
	}
	return nil
}
