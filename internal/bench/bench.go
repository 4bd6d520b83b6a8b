// Package bench measures keel's write path against the disk it runs on.
//
// Run makes a temporary directory, measures the raw disk there (sequential
// 1 MiB writes each followed by fdatasync, and 4 KiB write+fdatasync
// latency), then starts real `keel serve` processes on free loopback ports —
// first a 1-data-node cluster, then a 3-data-node one — and drives each with
// a throughput load (concurrent 1 MiB PUTs through the admin API) and a
// latency load (sequential 4 KiB PUTs). Bytes each node process writes to
// disk are read from /proc/<pid>/io to give its write amplification, and
// CPU time from /proc/<pid>/stat shows which process saturates. The result
// is compared with the targets of the design (see Evaluate); nothing is
// asserted.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Options say what Run measures and where.
type Options struct {
	Dir         string    // parent of the per-run temporary directory; default os.TempDir()
	Size        uint64    // payload of the throughput phase and of the sequential disk test
	Writers     int       // concurrent writers of the throughput phase
	RequestSize int       // bytes per PUT of the throughput phase (and per disk write)
	LatencyOps  int       // sequential 4 KiB operations of each latency test
	DataNodes   []int     // cluster sizes to measure, in order
	Executable  string    // the keel binary, started as `<Executable> serve --config …`
	Progress    io.Writer // progress lines; nil discards them
}

// DefaultOptions returns the standard benchmark: 1 GiB from 16 writers in
// 1 MiB requests, 2000 latency operations, 1 and 3 data nodes.
func DefaultOptions() Options {
	return Options{
		Size:        1 << 30,
		Writers:     16,
		RequestSize: 1 << 20,
		LatencyOps:  2000,
		DataNodes:   []int{1, 3},
	}
}

const (
	smallIO       = 4 << 10          // size of a latency operation
	latencyWarmup = 50               // unmeasured operations before a latency test
	quietWindow   = 2 * time.Second  // write_bytes must stay flat this long to count as settled
	settleMax     = 60 * time.Second // give up waiting for background writes after this
	quietBytes    = 1 << 20          // growth within quietWindow still counted as flat
	spaceFactor   = 10               // free space needed, in multiples of Size
)

// Run measures the disk and each cluster size of o and returns every figure
// with the target checks filled in.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp(o.Dir, "keel-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: make the run directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	if err := checkSpace(runDir, spaceFactor*o.Size); err != nil {
		return nil, err
	}

	res := &Result{Dir: runDir, PayloadBytes: o.Size, Writers: o.Writers, RequestBytes: o.RequestSize,
		LatencyOps: o.LatencyOps, CPUs: runtime.NumCPU()}
	o.progressf("disk: %s of sequential %s writes + fdatasync, then %d × 4 KiB write + fdatasync, in %s",
		formatBytes(o.Size), formatBytes(uint64(o.RequestSize)), o.LatencyOps, runDir)
	others, err := watchOthers(noProcesses, func() (err error) {
		res.Disk, err = measureDisk(ctx, runDir, o.Size, o.RequestSize, o.LatencyOps)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.Disk.Others = others
	o.progressf("disk: %.1f MB/s, 4 KiB p50 %.3f ms p99 %.3f ms", res.Disk.SeqMBps, res.Disk.Sync4K.P50Ms, res.Disk.Sync4K.P99Ms)

	for _, n := range o.DataNodes {
		cr, err := o.measureCluster(ctx, filepath.Join(runDir, fmt.Sprintf("cluster-%d", n)), n)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, cr)
	}
	res.Checks = Evaluate(res)
	return res, nil
}

func noProcesses() []int { return nil }

func (o *Options) check() error {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	switch {
	case o.Size == 0 || o.Writers <= 0 || o.RequestSize <= 0 || o.LatencyOps <= 0:
		return errors.New("bench: size, writers, request size and latency operations must be positive")
	case o.Executable == "":
		return errors.New("bench: no keel executable to start the nodes with")
	case len(o.DataNodes) == 0:
		return errors.New("bench: no cluster size to measure")
	}
	return nil
}

func (o *Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
	}
}

// checkSpace fails early if dir's filesystem has less than need bytes free.
func checkSpace(dir string, need uint64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("bench: statfs %s: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < need {
		return fmt.Errorf("bench: %s has %s free; the benchmark needs about %s (%d × --size): pass a smaller --size or another --dir",
			dir, formatBytes(free), formatBytes(need), spaceFactor)
	}
	return nil
}

// measureCluster starts a cluster of n data nodes in dir, measures its
// write throughput with each node's write amplification, then its 4 KiB
// write latency, and stops it and removes dir.
func (o *Options) measureCluster(ctx context.Context, dir string, n int) (ClusterResult, error) {
	label := clusterLabel(n)
	o.progressf("%s: starting the `keel serve` processes in %s", label, dir)
	c, err := startCluster(ctx, o.Executable, dir, n)
	if err != nil {
		return ClusterResult{}, err
	}
	defer os.RemoveAll(dir)
	defer c.stop()
	const vol = "bench"
	if _, err := c.client.CreateVolume(ctx, vol, 2*o.Size+1<<30); err != nil {
		return ClusterResult{}, fmt.Errorf("bench: create the volume: %w", err)
	}
	api := newAPIWriter(c.client, vol)
	cr := ClusterResult{DataNodes: n, Leader: c.leader, PayloadBytes: o.Size}
	for _, p := range c.nodes {
		cr.Nodes = append(cr.Nodes, NodeResult{ID: p.id, PID: p.pid(), Leader: p.id == c.leader})
	}

	o.progressf("%s: throughput, %d writers × %s PUTs, %s in all", label, o.Writers, formatBytes(uint64(o.RequestSize)), formatBytes(o.Size))
	if err := o.throughputPhase(ctx, c, api, &cr); err != nil {
		return cr, err
	}
	o.progressf("%s: %.1f MB/s, write amplification %.2f over all nodes (settled: %t after %.1f s)",
		label, cr.ThroughputMBps, cr.Amplification, cr.Settle.Quiet, cr.Settle.Seconds)

	o.progressf("%s: latency, %d sequential 4 KiB PUTs after %d unmeasured ones", label, o.LatencyOps, latencyWarmup)
	if err := o.latencyPhase(ctx, c, api, &cr); err != nil {
		return cr, err
	}
	o.progressf("%s: 4 KiB p50 %.3f ms p99 %.3f ms", label, cr.Write4K.P50Ms, cr.Write4K.P99Ms)
	return cr, c.failed()
}

// latencyPhase warms up, then times sequential 4 KiB PUTs and fills in cr's
// latency figures.
func (o *Options) latencyPhase(ctx context.Context, c *localCluster, api *apiWriter, cr *ClusterResult) error {
	if _, err := runLatency(ctx, api.put, "warmup", latencyWarmup); err != nil {
		return errors.Join(err, c.failed())
	}
	before, err := scrapeLeader(ctx, c.client)
	if err != nil {
		return err
	}
	var lat []time.Duration
	conns := api.conns.Load()
	cr.OthersDuringLatency, err = watchOthers(c.pids, func() (err error) {
		lat, err = runLatency(ctx, api.put, "latency", o.LatencyOps)
		return err
	})
	cr.LatencyConnections = api.conns.Load() - conns
	if err != nil {
		return errors.Join(err, c.failed())
	}
	cr.Write4K = summarize(lat)
	after, err := scrapeLeader(ctx, c.client)
	if err != nil {
		return err
	}
	if before.leader && after.leader {
		b := breakdown(before, after, len(lat), time.Duration(cr.Write4K.MeanMs*float64(time.Millisecond)))
		cr.Write4KBreakdown = &b
	}
	return nil
}

// throughputPhase runs the throughput load against c, waits for the nodes'
// background writes (flushes, compactions, followers catching up) to stop,
// and fills in cr's throughput, CPU and write amplification figures.
func (o *Options) throughputPhase(ctx context.Context, c *localCluster, api *apiWriter, cr *ClusterResult) error {
	dev := deviceOf(c.dir)
	before, err := takeSnapshot(c.pids(), dev)
	if err != nil {
		return err
	}
	metricsBefore, err := scrapeLeader(ctx, c.client)
	if err != nil {
		return err
	}
	var took time.Duration
	conns := api.conns.Load()
	cr.OthersDuringLoad, err = watchOthers(c.pids, func() (err error) {
		took, err = runThroughput(ctx, api.put, o.Writers, o.RequestSize, o.Size)
		return err
	})
	cr.LoadConnections = api.conns.Load() - conns
	if err != nil {
		return errors.Join(err, c.failed())
	}
	loaded, err := takeSnapshot(c.pids(), dev)
	if err != nil {
		return err
	}
	metricsAfter, err := scrapeLeader(ctx, c.client)
	if err != nil {
		return err
	}
	if metricsBefore.leader && metricsAfter.leader {
		puts := int((o.Size + uint64(o.RequestSize) - 1) / uint64(o.RequestSize))
		b := breakdown(metricsBefore, metricsAfter, puts, 0)
		cr.LoadBreakdown = &b
	}
	o.progressf("waiting until the nodes' write_bytes stay flat for %s (at most %s)", quietWindow, settleMax)
	nodesWritten := func() (uint64, error) {
		s, err := takeSnapshot(c.pids(), blockDev{})
		return s.sumWriteBytes(), err
	}
	_, waited, quiet, err := waitQuiet(ctx, nodesWritten, quietWindow, settleMax, 250*time.Millisecond, quietBytes)
	if err != nil {
		return err
	}
	settled, err := takeSnapshot(c.pids(), dev)
	if err != nil {
		return err
	}
	cr.addLoad(took, before, loaded, settled, runtime.NumCPU())
	cr.Settle = Settle{Seconds: waited.Seconds(), Quiet: quiet}
	for i, p := range c.nodes {
		if cr.Nodes[i].DiskUsage, err = diskUsage(p.dataDir); err != nil {
			return fmt.Errorf("bench: disk usage of node %s: %w", p.id, err)
		}
	}
	return nil
}
