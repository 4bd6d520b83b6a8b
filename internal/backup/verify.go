package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"time"
)

// fetchChunk reads chunk c and checks its length and SHA-256. Errors wrap
// ErrMissing or ErrCorrupt and name the object.
func fetchChunk(ctx context.Context, st Store, c Chunk) ([]byte, error) {
	key := ChunkKey(c.Hash)
	rc, err := st.Get(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrMissing, key)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, int64(c.Len)+1))
	if err != nil {
		return nil, fmt.Errorf("backup: read %s: %w", key, err)
	}
	if len(data) != int(c.Len) {
		return nil, fmt.Errorf("%w: %s holds %d bytes or more, the manifest says %d", ErrCorrupt, key, len(data), c.Len)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != c.Hash {
		return nil, fmt.Errorf("%w: %s: its content hashes to %s", ErrCorrupt, key, got)
	}
	return data, nil
}

// fetched is one chunk read by fetchOrdered.
type fetched struct {
	data []byte
	err  error
}

// fetchOrdered reads the chunks that each sends, with workers readers at
// once, and delivers them in the order sent, each after its check. The
// channel of results is closed after the last one; at most about 4 ×
// workers chunks are held in memory.
func fetchOrdered(ctx context.Context, st Store, workers int, each func(yield func(Chunk) bool)) <-chan chan fetched {
	type job struct {
		c   Chunk
		out chan fetched
	}
	order := make(chan chan fetched, 4*workers)
	jobs := make(chan job)
	go func() {
		defer close(order)
		defer close(jobs)
		each(func(c Chunk) bool {
			out := make(chan fetched, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- job{c, out}:
				return true
			case <-ctx.Done():
				out <- fetched{err: ctx.Err()}
				return false
			}
		})
	}()
	for range workers {
		go func() {
			for j := range jobs {
				data, err := fetchChunk(ctx, st, j.c)
				j.out <- fetched{data, err}
			}
		}()
	}
	return order
}

// nextChunk takes the next chunk fetchOrdered delivers, which must be c of
// file n, and returns its checked data.
func nextChunk(ctx context.Context, order <-chan chan fetched, n Inode, c Chunk) ([]byte, error) {
	var f fetched
	select {
	case out, ok := <-order:
		if !ok {
			return nil, fmt.Errorf("chunk fetcher ended early: %w", ctx.Err())
		}
		f = <-out
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, fmt.Errorf("data of %s at offset %d: %w", n.Paths[0], c.Off, f.err)
	}
	return f.data, nil
}

// VerifyResult reports a verification.
type VerifyResult struct {
	Backups  []string // volume/id of each backup checked
	Chunks   int64    // distinct chunks read back
	Bytes    uint64
	Problems []string // every missing or corrupt object, manifests first
	Duration time.Duration
}

// Verify reads back every object of backup id (all backups if id is "")
// and checks every checksum. It returns an error naming the first missing
// or corrupt object if there is any; the result lists them all.
func Verify(ctx context.Context, st Store, id string, opts Options) (*VerifyResult, error) {
	refs, err := listBackups(ctx, st)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{}
	var first error // the first problem
	var ms []*Manifest
	for _, r := range refs {
		if id != "" && r.ID != id {
			continue
		}
		res.Backups = append(res.Backups, r.Volume+"/"+r.ID)
		m, err := LoadManifest(ctx, st, r.Key)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMissing) {
				return nil, err
			}
			res.Problems = append(res.Problems, err.Error())
			if first == nil {
				first = err
			}
			continue
		}
		ms = append(ms, m)
	}
	if len(res.Backups) == 0 {
		if id != "" {
			return nil, fmt.Errorf("%w %s in %s: see `keel backup list`", ErrNoBackup, id, storeName(st))
		}
		return nil, fmt.Errorf("%w in %s", ErrNoBackup, storeName(st))
	}
	// Each distinct chunk once, in key order.
	lens := map[string]uint32{}
	for _, m := range ms {
		for _, n := range m.Inodes {
			for _, c := range n.Chunks {
				lens[c.Hash] = c.Len
			}
		}
	}
	chunks := make([]Chunk, 0, len(lens))
	cnt := newCounters("verify")
	for h, l := range lens {
		chunks = append(chunks, Chunk{Hash: h, Len: l})
		cnt.total.Add(uint64(l))
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].Hash < chunks[j].Hash })
	stop := cnt.report(opts)
	var mu sync.Mutex
	bad := map[int]error{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range opts.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := fetchChunk(ctx, st, chunks[i]); err != nil {
					mu.Lock()
					bad[i] = err
					mu.Unlock()
				}
				cnt.bytes.Add(uint64(chunks[i].Len))
			}
		}()
	}
	for i := range chunks {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	idx := make([]int, 0, len(bad))
	for i := range bad {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		res.Problems = append(res.Problems, bad[i].Error())
		if first == nil {
			first = bad[i]
		}
	}
	res.Chunks = int64(len(chunks))
	res.Duration = time.Since(cnt.start)
	res.Bytes = cnt.bytes.Load()
	if len(res.Problems) > 0 {
		more := ""
		if len(res.Problems) > 1 {
			more = fmt.Sprintf(" (and %d more problems)", len(res.Problems)-1)
		}
		return res, fmt.Errorf("verify failed: %w%s", first, more)
	}
	return res, nil
}

// storeName names a store in messages.
func storeName(st Store) string {
	if s, ok := st.(fmt.Stringer); ok {
		return s.String()
	}
	return "the backup store"
}
