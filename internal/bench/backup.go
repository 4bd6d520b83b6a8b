package bench

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"keel/internal/backup/s3/s3test"
	"keel/internal/cluster"
)

// BackupOptions say what RunBackup measures.
type BackupOptions struct {
	Dir          string    // parent of the per-run temporary directory; default os.TempDir()
	Size         uint64    // random data in the large volume
	SmallSize    uint64    // random data in the small volume (snapshot timing only)
	Change       float64   // fraction of Size changed before the incremental pushes
	SnapshotRuns int       // snapshots timed per volume
	Executable   string    // the keel binary
	Progress     io.Writer // progress lines; nil discards them
}

// DefaultBackupOptions returns the standard benchmark: 1 GiB, 1% changed,
// snapshots of it and of a 10 MiB volume timed 5 times each.
func DefaultBackupOptions() BackupOptions {
	return BackupOptions{Size: 1 << 30, SmallSize: 10 << 20, Change: 0.01, SnapshotRuns: 5}
}

// BackupResult holds every figure of a backup benchmark run; it is what
// `keel bench backup --json` prints. MB are 10^6 bytes.
type BackupResult struct {
	Dir          string           `json:"dir"` // the run directory (removed afterwards)
	DataBytes    uint64           `json:"data_bytes"`
	Files        int              `json:"files"`
	ChangedBytes uint64           `json:"changed_bytes"` // rewritten before the incremental pushes
	ChangedParts int              `json:"changed_parts"` // 64 KiB pieces, spread over the files
	CPUs         int              `json:"cpus"`
	S3Server     string           `json:"s3_server"`
	Stores       []BackupStoreRun `json:"stores"`
	Snapshots    []SnapshotRun    `json:"snapshots"`
	Others       Others           `json:"others"` // the whole run
}

// BackupStoreRun is one store's figures.
type BackupStoreRun struct {
	Name               string  `json:"name"`
	URL                string  `json:"url"`
	PushSeconds        float64 `json:"push_seconds"`
	PushMBps           float64 `json:"push_mb_per_s"`
	PushUploaded       uint64  `json:"push_uploaded_bytes"`
	RestoreSeconds     float64 `json:"restore_seconds"`
	RestoreMBps        float64 `json:"restore_mb_per_s"`
	IncrementalSeconds float64 `json:"incremental_seconds"`
	IncrementalBytes   uint64  `json:"incremental_uploaded_bytes"`
	IncrementalPercent float64 `json:"incremental_percent"` // of DataBytes
}

// SnapshotRun is the creation time of snapshots of one volume.
type SnapshotRun struct {
	Volume    string  `json:"volume"`
	DataBytes uint64  `json:"data_bytes"`
	Runs      int     `json:"runs"`
	MedianMs  float64 `json:"median_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// RunBackup starts versitygw and a 1-data-node cluster (real `keel serve`
// process) in a temporary directory, fills a volume with Size random bytes
// and measures, side by side for a file:// store and the S3 server: a full
// push, a restore into a new volume, and after changing Change of the data,
// an incremental push; then the creation time of snapshots of the large
// volume and of a SmallSize one.
func RunBackup(ctx context.Context, o BackupOptions) (*BackupResult, error) {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Size < 1<<20 || o.SmallSize == 0 || o.Change <= 0 || o.Change > 1 || o.SnapshotRuns <= 0 || o.Executable == "" {
		return nil, errors.New("bench: backup needs a size of at least 1 MiB, a small size, a change in (0, 1], snapshot runs and the keel binary")
	}
	bin, err := s3test.Find()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	runDir, err := os.MkdirTemp(o.Dir, "keel-bench-backup-")
	if err != nil {
		return nil, fmt.Errorf("bench: make the run directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	if err := checkSpace(runDir, 8*o.Size); err != nil {
		return nil, err
	}
	progressf := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
		}
	}

	srv, err := s3test.Start(ctx, bin, s3test.Options{Root: filepath.Join(runDir, "s3root")})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer srv.Close()
	const bucket = "keel-bench"
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	progressf("versitygw on %s (posix backend in %s)", srv.Endpoint, srv.Root)
	c, err := startClusterEnv(ctx, o.Executable, filepath.Join(runDir, "cluster"), 1, srv.Env())
	if err != nil {
		return nil, err
	}
	defer c.stop()
	res := &BackupResult{Dir: runDir, CPUs: runtime.NumCPU(), S3Server: "versitygw, posix backend, on loopback (" + bin + ")",
		Stores: []BackupStoreRun{{Name: "file://", URL: "file://" + filepath.Join(runDir, "file-store")},
			{Name: "s3:// (versitygw)", URL: srv.URL(bucket, "bench")}}}
	ours := func() []int { return append(c.pids(), srv.PID()) }
	res.Others, err = watchOthers(ours, func() error { return runBackupPhases(ctx, c, o, res, progressf) })
	if err != nil {
		return nil, errors.Join(err, c.failed())
	}
	return res, nil
}

func runBackupPhases(ctx context.Context, c *localCluster, o BackupOptions, res *BackupResult, progressf func(string, ...any)) error {
	const vol, small = "bench", "small"
	if _, err := c.client.CreateVolume(ctx, vol, 2*o.Size+1<<30); err != nil {
		return fmt.Errorf("bench: create the volume: %w", err)
	}
	if _, err := c.client.CreateVolume(ctx, small, 2*o.SmallSize+1<<30); err != nil {
		return fmt.Errorf("bench: create the volume: %w", err)
	}
	progressf("writing %s of random data into volume %s, and %s into %s", formatBytes(o.Size), vol, formatBytes(o.SmallSize), small)
	api := newAPIWriter(c.client, vol)
	if err := fillRandom(ctx, api, 8, o.Size); err != nil {
		return err
	}
	if err := fillRandom(ctx, newAPIWriter(c.client, small), 1, o.SmallSize); err != nil {
		return err
	}
	files, err := c.client.List(ctx, vol, "/")
	if err != nil {
		return fmt.Errorf("bench: list %s: %w", vol, err)
	}
	res.Files = len(files)
	for _, f := range files {
		res.DataBytes += f.Size
	}

	for i := range res.Stores {
		s := &res.Stores[i]
		progressf("%s: full push of %s", s.Name, vol)
		start := time.Now()
		pr, err := c.client.BackupPush(ctx, vol, s.URL, nil)
		if err != nil {
			return fmt.Errorf("bench: push to %s: %w", s.Name, err)
		}
		took := time.Since(start)
		s.PushSeconds, s.PushMBps, s.PushUploaded = took.Seconds(), mbPerSec(res.DataBytes, took), pr.BytesUploaded
		progressf("%s: %.1f MB/s (%s uploaded in %.1f s)", s.Name, s.PushMBps, formatBytes(pr.BytesUploaded), s.PushSeconds)
	}
	for i := range res.Stores {
		s := &res.Stores[i]
		progressf("%s: restore into a new volume", s.Name)
		start := time.Now()
		if _, err := c.client.BackupRestore(ctx, cluster.BackupRestoreRequest{URL: s.URL, Volume: "restored"}, nil); err != nil {
			return fmt.Errorf("bench: restore from %s: %w", s.Name, err)
		}
		took := time.Since(start)
		s.RestoreSeconds, s.RestoreMBps = took.Seconds(), mbPerSec(res.DataBytes, took)
		progressf("%s: restore %.1f MB/s (%.1f s)", s.Name, s.RestoreMBps, s.RestoreSeconds)
		if err := c.client.DeleteVolume(ctx, "restored", true); err != nil {
			return fmt.Errorf("bench: delete the restored volume: %w", err)
		}
	}

	if err := changeData(ctx, api, files, o.Change, res); err != nil {
		return err
	}
	progressf("changed %s in %d pieces of 64 KiB; incremental pushes", formatBytes(res.ChangedBytes), res.ChangedParts)
	for i := range res.Stores {
		s := &res.Stores[i]
		start := time.Now()
		pr, err := c.client.BackupPush(ctx, vol, s.URL, nil)
		if err != nil {
			return fmt.Errorf("bench: incremental push to %s: %w", s.Name, err)
		}
		s.IncrementalSeconds, s.IncrementalBytes = time.Since(start).Seconds(), pr.BytesUploaded
		s.IncrementalPercent = 100 * ratio(float64(pr.BytesUploaded), float64(res.DataBytes))
		progressf("%s: incremental push uploaded %s (%.2f%%) in %.2f s", s.Name, formatBytes(s.IncrementalBytes),
			s.IncrementalPercent, s.IncrementalSeconds)
	}

	for _, v := range []struct {
		name string
		size uint64
	}{{vol, res.DataBytes}, {small, o.SmallSize}} {
		r, err := timeSnapshots(ctx, c.client, v.name, o.SnapshotRuns)
		if err != nil {
			return err
		}
		r.DataBytes = v.size
		res.Snapshots = append(res.Snapshots, r)
		progressf("snapshot of %s (%s): median %.2f ms", v.name, formatBytes(v.size), r.MedianMs)
	}
	return c.failed()
}

// fillRandom writes size bytes of random data (no two 64 KiB pieces alike)
// into n files of the volume, from n writers in 1 MiB requests.
func fillRandom(ctx context.Context, api *apiWriter, n int, size uint64) error {
	const req = 1 << 20
	per := size / uint64(n)
	errs := make(chan error, n)
	for w := range n {
		go func() {
			var seed [32]byte
			_, _ = crand.Read(seed[:])
			rng := mrand.NewChaCha8(seed)
			buf := make([]byte, req)
			name := fmt.Sprintf("data-%02d", w)
			length := per
			if w == n-1 {
				length = size - per*uint64(n-1)
			}
			for off := uint64(0); off < length; off += req {
				b := buf[:min(req, length-off)]
				_, _ = rng.Read(b)
				if err := api.put(ctx, name, off, b); err != nil {
					errs <- fmt.Errorf("bench: write %s at %d: %w", name, off, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// changeData overwrites change × the data in 64 KiB pieces with random
// bytes, spread evenly over the files.
func changeData(ctx context.Context, api *apiWriter, files []cluster.DirEntry, change float64, res *BackupResult) error {
	const piece = 64 << 10
	parts := max(1, int(change*float64(res.DataBytes)/piece))
	buf := make([]byte, piece)
	for i := range parts {
		f := files[i%len(files)]
		slots := max(1, f.Size/piece)
		k := uint64(i / len(files))
		per := max(1, uint64(parts/len(files))+1)
		off := (k * slots / per) * piece
		if off+piece > f.Size {
			off = 0
		}
		if _, err := crand.Read(buf); err != nil {
			return err
		}
		if err := api.put(ctx, f.Name, off, buf); err != nil {
			return fmt.Errorf("bench: change %s at %d: %w", f.Name, off, err)
		}
	}
	res.ChangedParts, res.ChangedBytes = parts, uint64(parts)*piece
	return nil
}

// timeSnapshots creates runs snapshots of vol one after another, timing
// each, and deletes them.
func timeSnapshots(ctx context.Context, c *cluster.Client, vol string, runs int) (SnapshotRun, error) {
	var took []time.Duration
	for i := range runs {
		name := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		if _, err := c.CreateSnapshot(ctx, vol, name); err != nil {
			return SnapshotRun{}, fmt.Errorf("bench: snapshot %s@%s: %w", vol, name, err)
		}
		took = append(took, time.Since(start))
	}
	for i := range runs {
		if err := c.DeleteSnapshot(ctx, vol, fmt.Sprintf("bench-%d", i)); err != nil {
			return SnapshotRun{}, fmt.Errorf("bench: delete snapshot: %w", err)
		}
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return SnapshotRun{Volume: vol, Runs: runs, MedianMs: ms(took[len(took)/2]), MaxMs: ms(took[len(took)-1])}, nil
}

// WriteBackupText prints a backup benchmark's result as tables.
func WriteBackupText(w io.Writer, r *BackupResult) {
	fmt.Fprintf(w, "keel bench backup: %s of random data in %d files on a 1-data-node cluster (a real `keel serve`); %d CPUs\n",
		formatBytes(r.DataBytes), r.Files, r.CPUs)
	fmt.Fprintf(w, "before the incremental pushes %s (%.2f%%) was rewritten in %d pieces of 64 KiB spread over the files\n",
		formatBytes(r.ChangedBytes), 100*ratio(float64(r.ChangedBytes), float64(r.DataBytes)), r.ChangedParts)
	fmt.Fprintf(w, "S3: %s; run directory %s (removed); MB = 10^6 bytes; times from request to result, on the client\n\n", r.S3Server, r.Dir)
	const row = "%-20s %15s %13s   %s\n"
	fmt.Fprintf(w, row, "store", "full push MB/s", "restore MB/s", "incremental push: uploaded (of the data), time")
	for _, s := range r.Stores {
		fmt.Fprintf(w, row, s.Name, fmt.Sprintf("%.1f", s.PushMBps), fmt.Sprintf("%.1f", s.RestoreMBps),
			fmt.Sprintf("%s (%.2f%%), %.2f s", formatBytes(s.IncrementalBytes), s.IncrementalPercent, s.IncrementalSeconds))
	}
	fmt.Fprintf(w, "\n%-20s %10s %10s\n", "snapshot creation", "median", "max")
	for _, s := range r.Snapshots {
		fmt.Fprintf(w, "%-20s %7.2f ms %7.2f ms   (%d runs)\n", formatBytes(s.DataBytes)+" volume", s.MedianMs, s.MaxMs, s.Runs)
	}
	fmt.Fprintf(w, "\nothers, in %% of one CPU over the run: %s\n", othersText(r.Others))
	if r.Others.ProcessesPercent >= othersWarnPct {
		fmt.Fprintf(w, "WARNING: other processes used %.0f %% of one CPU: the figures are lower than keel alone would reach.\n",
			r.Others.ProcessesPercent)
	}
}
