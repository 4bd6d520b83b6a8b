package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DiskResult is the raw disk under the benchmark directory: the limit keel
// is measured against.
type DiskResult struct {
	SeqBytes   uint64  `json:"seq_bytes"`
	SeqSeconds float64 `json:"seq_seconds"`
	SeqMBps    float64 `json:"seq_mb_per_s"` // sequential writes, each followed by fdatasync
	Sync4K     Latency `json:"sync_4k"`      // one 4 KiB append + fdatasync
	Others     Others  `json:"others"`       // other processes meanwhile
}

// measureDisk appends size bytes in chunk-sized writes to a new file in dir,
// each write followed by fdatasync, then times ops sequential 4 KiB
// append+fdatasync operations on another file. Both files are removed.
func measureDisk(ctx context.Context, dir string, size uint64, chunk, ops int) (DiskResult, error) {
	r := DiskResult{SeqBytes: size}
	took, err := syncedWrites(ctx, filepath.Join(dir, "disk-seq"), size, chunk, nil)
	if err != nil {
		return r, err
	}
	r.SeqSeconds, r.SeqMBps = took.Seconds(), mbPerSec(size, took)
	var lat []time.Duration
	if _, err := syncedWrites(ctx, filepath.Join(dir, "disk-4k"), uint64(ops)*smallIO, smallIO, &lat); err != nil {
		return r, err
	}
	r.Sync4K = summarize(lat)
	return r, nil
}

// syncedWrites appends total bytes of random data to a new file at path in
// chunk-sized writes, each followed by fdatasync, and returns the time it
// took. If lat is not nil it receives the time of each write+fdatasync.
func syncedWrites(ctx context.Context, path string, total uint64, chunk int, lat *[]time.Duration) (time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("bench: disk test: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, chunk)
	if _, err := rand.Read(buf); err != nil {
		return 0, fmt.Errorf("bench: disk test: %w", err)
	}
	start := time.Now()
	for done := uint64(0); done < total; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := min(uint64(chunk), total-done)
		t := time.Now()
		if _, err := f.Write(buf[:n]); err != nil {
			return 0, fmt.Errorf("bench: disk test: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, fmt.Errorf("bench: disk test: fdatasync: %w", err)
		}
		if lat != nil {
			*lat = append(*lat, time.Since(t))
		}
		done += n
	}
	return time.Since(start), nil
}
