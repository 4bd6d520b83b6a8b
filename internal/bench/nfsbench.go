package bench

// `keel bench nfs`: keel's NFS service against NFS-Ganesha on the same disk
// with the same clients.
//
// RunNFS serves a directory of the run directory in turn with keel with 1
// data node, keel with 3 data nodes (real `keel serve` processes, the
// client talking to the leader's NFS port) and Ganesha with FSAL VFS (see
// ganesha.go). Each gets the same loads: a small nfs-cp through a counting
// proxy that shows what nfs-cp asks for and what the server promises
// (nfsprobe.go), a sequential nfs-cp of a random file in and then out,
// byte-compared (nfscp.go), and a metadata loop with keel's Go client
// (nfsmeta.go). CPU time of every process is read from /proc around each
// load, other processes' share with the store benchmark's helpers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// NFSOptions say what RunNFS measures and where.
type NFSOptions struct {
	Dir     string   // parent of the per-run temporary directory; default os.TempDir()
	Size    uint64   // bytes of the sequential copy
	Files   int      // files of the metadata loop
	Workers int      // connections of the metadata loop
	Servers []string // kinds to measure (KindKeel1, KindKeel3, KindGanesha), in this order
	// Warmup copies the file in and out once, unmeasured, before the
	// measured copies, on every server alike. On a VM the first use of
	// memory the guest has freed costs a hypervisor fault per page (on the
	// test machine, touching 18 GiB took 57 s of system CPU), so the first
	// copy into a fresh server measures the host more than the server.
	Warmup     bool
	Executable string    // the keel binary
	Progress   io.Writer // progress lines; nil discards them
}

// DefaultNFSOptions returns the standard run: 256 MiB, 10,000 files from
// 8 connections.
func DefaultNFSOptions() NFSOptions {
	return NFSOptions{Size: 256 << 20, Files: 10000, Workers: 8, Servers: []string{KindKeel1, KindKeel3, KindGanesha}, Warmup: true}
}

// Server kinds of NFSServerResult.Kind.
const (
	KindKeel1   = "keel-1"
	KindKeel3   = "keel-3"
	KindGanesha = "ganesha"
)

const (
	probeSize     = 4 << 20 // the probe's nfs-cp
	nfsSpaceExtra = 1 << 30
	nfsSpaceTimes = 16 // free space needed, in multiples of Size, beyond nfsSpaceExtra
)

// nfsTarget is one server under test.
type nfsTarget struct {
	// resolve returns where to reach the server now (for keel, the
	// leader's NFS port) and, for keel, the leader's id.
	resolve func(ctx context.Context) (nfsAddr, mountAddr, leader string, err error)
	procs   func() []procRef // its processes
	logs    func() string    // the end of its logs, for errors
}

// procRef names a process of a server.
type procRef struct {
	name string
	pid  int
}

// RunNFS measures each server and returns the figures with the target
// checks filled in.
func RunNFS(ctx context.Context, o NFSOptions) (*NFSResult, error) {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Size == 0 || o.Files <= 0 || o.Workers <= 0 || o.Executable == "" {
		return nil, errors.New("bench: nfs needs a size, files, connections and the keel executable")
	}
	for _, k := range o.Servers {
		if k != KindKeel1 && k != KindKeel3 && k != KindGanesha {
			return nil, fmt.Errorf("bench: unknown server %q: choose from %s, %s and %s", k, KindKeel1, KindKeel3, KindGanesha)
		}
	}
	if len(o.Servers) == 0 {
		return nil, errors.New("bench: no server to measure: name at least one of keel-1, keel-3, ganesha")
	}
	if _, err := exec.LookPath("nfs-cp"); err != nil {
		return nil, errNoNFSCp
	}
	runDir, err := os.MkdirTemp(o.Dir, "keel-bench-nfs-")
	if err != nil {
		return nil, fmt.Errorf("bench: make the run directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	if err := checkSpace(runDir, nfsSpaceTimes*o.Size+nfsSpaceExtra); err != nil {
		return nil, err
	}
	src, probeSrc := filepath.Join(runDir, "src.bin"), filepath.Join(runDir, "probe.bin")
	progressf(o.Progress, "nfs: writing %s of random bytes to %s", formatBytes(o.Size), src)
	if err := writeRandomFile(src, o.Size); err != nil {
		return nil, err
	}
	if err := writeRandomFile(probeSrc, probeSize); err != nil {
		return nil, err
	}
	res := &NFSResult{Dir: runDir, CPUs: runtime.NumCPU(), SizeBytes: o.Size, Files: o.Files, Workers: o.Workers, Warmup: o.Warmup}
	for _, kind := range o.Servers {
		sr, err := o.measureServer(ctx, runDir, kind, src, probeSrc)
		if err != nil {
			return nil, err
		}
		res.Servers = append(res.Servers, sr)
	}
	res.Checks = EvaluateNFS(res)
	return res, nil
}

// measureServer starts the server of kind in its own directory under
// runDir, runs every load against it, stops it and removes the directory.
// A load that fails is recorded in the result and the others go on; only
// failing to start keel, or ctx ending, ends the run.
func (o *NFSOptions) measureServer(ctx context.Context, runDir, kind, src, probeSrc string) (NFSServerResult, error) {
	dir := filepath.Join(runDir, kind)
	defer os.RemoveAll(dir)
	sr := NFSServerResult{Kind: kind}
	if kind == KindGanesha {
		return o.measureGanesha(ctx, dir, sr, src, probeSrc)
	}
	n := 1
	if kind == KindKeel3 {
		n = 3
	}
	sr.Name = clusterLabel(n)
	sr.Durability = fmt.Sprintf("committed on %d of %d nodes, each fsync'd (CREATE, REMOVE too)", n/2+1, n)
	if os.Getenv("KEEL_NFS_UNSTABLE_WRITES") == "1" { // inherited by the keel processes
		sr.Durability = fmt.Sprintf("in the leader's raft pipeline; COMMIT → committed on %d of %d nodes, each fsync'd (FILE_SYNC, CREATE, REMOVE: committed before the reply)", n/2+1, n)
	}
	progressf(o.Progress, "nfs: %s: starting the `keel serve` processes in %s", sr.Name, dir)
	c, err := startCluster(ctx, o.Executable, dir, n)
	if err != nil {
		return sr, err
	}
	defer c.stop()
	if err := exportData(ctx, c.client, 2*o.Size+nfsSpaceExtra); err != nil {
		return sr, err
	}
	t := nfsTarget{
		resolve: func(ctx context.Context) (string, string, string, error) { return keelLeaderNFS(ctx, c) },
		procs: func() []procRef {
			var out []procRef
			for _, p := range c.nodes {
				out = append(out, procRef{name: p.id, pid: p.pid()})
			}
			return out
		},
		logs: func() string { return keelLogTails(c) },
	}
	o.runLoads(ctx, &sr, t, src, probeSrc)
	return sr, errors.Join(ctx.Err(), c.failed())
}

// measureGanesha is measureServer for Ganesha: missing or failing to
// start, it is recorded as such and the run goes on.
func (o *NFSOptions) measureGanesha(ctx context.Context, dir string, sr NFSServerResult, src, probeSrc string) (NFSServerResult, error) {
	sr.Name = "NFS-Ganesha (FSAL VFS)"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sr, fmt.Errorf("bench: %w", err)
	}
	progressf(o.Progress, "nfs: ganesha: starting ganesha.nfsd in %s", dir)
	g, err := startGanesha(ctx, dir)
	var ni *errNotInstalled
	if errors.As(err, &ni) {
		sr.NotInstalled = ni.Error()
		progressf(o.Progress, "nfs: ganesha: %s", sr.NotInstalled)
		return sr, nil
	}
	if err != nil {
		sr.Error = err.Error()
		progressf(o.Progress, "nfs: ganesha: %v", err)
		return sr, ctx.Err()
	}
	defer g.stop()
	if g.version != "" {
		sr.Name = "NFS-Ganesha " + g.version + " (FSAL VFS)"
	}
	sr.Version = g.version
	sr.Durability = "in the kernel's page cache; COMMIT → fsync (CREATE, REMOVE: no sync)"
	t := nfsTarget{
		resolve: func(context.Context) (string, string, string, error) { return g.nfsAddr, g.mountAddr, "", nil },
		procs:   func() []procRef { return []procRef{{name: "ganesha.nfsd", pid: g.pid()}} },
		logs:    g.logTail,
	}
	o.runLoads(ctx, &sr, t, src, probeSrc)
	return sr, ctx.Err()
}

// keelLeaderNFS finds c's leader (waiting out an election, at most
// startTimeout) and returns its NFS address and id.
func keelLeaderNFS(ctx context.Context, c *localCluster) (string, string, string, error) {
	deadline := time.Now().Add(startTimeout)
	for {
		if err := c.failed(); err != nil {
			return "", "", "", err
		}
		st := c.client.Status(ctx, time.Second)
		for _, p := range c.client.Peers {
			if st.Leader != "" && p.ID == st.Leader && p.NFSAddr != "" {
				if err := waitNFS(ctx, p.NFSAddr); err != nil {
					return "", "", "", err
				}
				return p.NFSAddr, p.NFSAddr, p.ID, nil
			}
		}
		if time.Now().After(deadline) {
			return "", "", "", fmt.Errorf("bench: no leader with an NFS address after %s", startTimeout)
		}
		if err := sleepCtx(ctx, statusEvery); err != nil {
			return "", "", "", err
		}
	}
}

// keelLogTails is the end of each node's log (warnings and errors).
func keelLogTails(c *localCluster) string {
	var b strings.Builder
	for _, p := range c.nodes {
		tail, _ := os.ReadFile(p.log)
		if len(tail) > 1500 {
			tail = tail[len(tail)-1500:]
		}
		fmt.Fprintf(&b, "\n--- end of %s's log:\n%s", p.id, strings.TrimSpace(string(tail)))
	}
	return b.String()
}

// waitNFS waits until the NFS program answers NULL at addr.
func waitNFS(ctx context.Context, addr string) error {
	deadline := time.Now().Add(startTimeout)
	for !rpcAnswers(ctx, addr, nfsProgram, 3) {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: no NFS service answered at %s within %s", addr, startTimeout)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// runLoads runs the probe, the sequential write and read and the metadata
// loop against t, filling in sr; a load that fails records its error.
func (o *NFSOptions) runLoads(ctx context.Context, sr *NFSServerResult, t nfsTarget, src, probeSrc string) {
	progressf(o.Progress, "nfs: %s: probe: nfs-cp of %s through a counting proxy", sr.Name, formatBytes(probeSize))
	if nfsAddr, mountAddr, _, err := t.resolve(ctx); err != nil {
		sr.Probe.Error = err.Error()
	} else {
		sr.Probe = probeNFSCp(ctx, probeSrc, probeSize, nfsAddr, mountAddr, "probe.bin")
	}
	progressf(o.Progress, "nfs: %s: nfs-cp sent %s", sr.Name, sr.Probe.Text())

	if o.Warmup {
		if err := o.warmUp(ctx, sr.Name, t, src); err != nil {
			sr.Write.Error = "the unmeasured warm-up copy failed: " + err.Error()
			sr.Read.Error = "not run: the warm-up failed"
			return
		}
	}
	progressf(o.Progress, "nfs: %s: write: nfs-cp %s in", sr.Name, formatBytes(o.Size))
	sr.Write = runPhase(ctx, t, func(nfsAddr, mountAddr string) (time.Duration, time.Duration, error) {
		r, err := runNFSCp(ctx, src, seqURL(nfsAddr, mountAddr), o.Size)
		return r.took, r.cpu, err
	})
	sr.Write.MiBps = mibPerSec(o.Size, sr.Write.Seconds)
	o.phaseDone(sr.Name, "write", sr.Write, fmt.Sprintf("%.1f MiB/s", sr.Write.MiBps))
	if ctx.Err() != nil {
		return
	}

	out := filepath.Join(filepath.Dir(src), "out.bin")
	defer os.Remove(out)
	if sr.Write.Error != "" {
		sr.Read.Error = "not run: the write failed"
	} else {
		progressf(o.Progress, "nfs: %s: read: nfs-cp %s out", sr.Name, formatBytes(o.Size))
		sr.Read = runPhase(ctx, t, func(nfsAddr, mountAddr string) (time.Duration, time.Duration, error) {
			r, err := runNFSCp(ctx, seqURL(nfsAddr, mountAddr), out, o.Size)
			return r.took, r.cpu, err
		})
		sr.Read.MiBps = mibPerSec(o.Size, sr.Read.Seconds)
		if sr.Read.Error == "" {
			if err := sameFiles(src, out); err != nil {
				sr.Read.Error = "the file read back is not the one written: " + err.Error()
			}
		}
		os.Remove(out)
		o.phaseDone(sr.Name, "read", sr.Read, fmt.Sprintf("%.1f MiB/s, same bytes", sr.Read.MiBps))
	}
	if ctx.Err() != nil {
		return
	}

	progressf(o.Progress, "nfs: %s: metadata: %d × CREATE + GETATTR + REMOVE from %d connections", sr.Name, o.Files, o.Workers)
	sr.MetaCPU = runPhase(ctx, t, func(nfsAddr, mountAddr string) (time.Duration, time.Duration, error) {
		dir, err := metaSetup(ctx, nfsAddr, mountAddr)
		if err != nil {
			return 0, 0, err
		}
		sr.Meta, err = runMeta(ctx, nfsAddr, dir, o.Files, o.Workers)
		return time.Duration(sr.Meta.Seconds * float64(time.Second)), 0, err
	})
	o.phaseDone(sr.Name, "metadata", sr.MetaCPU, fmt.Sprintf("%.0f ops/s", sr.Meta.OpsPerSec))
}

// warmUp copies src in and out once, unmeasured; the file stays (removing
// it would hand its memory back before the measured copy).
func (o *NFSOptions) warmUp(ctx context.Context, name string, t nfsTarget, src string) error {
	progressf(o.Progress, "nfs: %s: warm-up: nfs-cp %s in and out, unmeasured", name, formatBytes(o.Size))
	nfsAddr, mountAddr, _, err := t.resolve(ctx)
	if err != nil {
		return err
	}
	_, nfsPort := splitPort(nfsAddr)
	_, mountPort := splitPort(mountAddr)
	url := nfsURL("127.0.0.1", nfsPort, mountPort, "warmup.bin")
	if _, err := runNFSCp(ctx, src, url, o.Size); err != nil {
		return err
	}
	out := filepath.Join(filepath.Dir(src), "warmup.out")
	defer os.Remove(out)
	_, err = runNFSCp(ctx, url, out, o.Size)
	return err
}

func (o *NFSOptions) phaseDone(server, name string, ph Phase, figure string) {
	switch {
	case ph.Error != "":
		progressf(o.Progress, "nfs: %s: %s failed: %s", server, name, ph.Error)
	case ph.Note != "":
		progressf(o.Progress, "nfs: %s: %s %s (%s)", server, name, figure, ph.Note)
	default:
		progressf(o.Progress, "nfs: %s: %s %s", server, name, figure)
	}
}

// seqURL is the libnfs URL of the sequential test's file.
func seqURL(nfsAddr, mountAddr string) string {
	_, nfsPort := splitPort(nfsAddr)
	_, mountPort := splitPort(mountAddr)
	return nfsURL("127.0.0.1", nfsPort, mountPort, "seq.bin")
}

func splitPort(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// runPhase finds where t is now, runs the load f against it under
// measurePhase and notes a change of keel's leader during it. A failure is
// recorded in the phase, with the end of the server's logs.
func runPhase(ctx context.Context, t nfsTarget, f func(nfsAddr, mountAddr string) (took, childCPU time.Duration, err error)) Phase {
	nfsAddr, mountAddr, leader, err := t.resolve(ctx)
	if err != nil {
		return Phase{Error: err.Error()}
	}
	ph, err := measurePhase(t, func() (time.Duration, time.Duration, error) { return f(nfsAddr, mountAddr) })
	if _, _, after, rerr := t.resolve(ctx); rerr == nil && after != leader {
		ph.Note = fmt.Sprintf("the leader moved from %s to %s during the load", leader, after)
	}
	if err != nil {
		ph.Error = err.Error()
		if ctx.Err() == nil {
			ph.Error += t.logs()
		}
	}
	return ph
}

// measurePhase runs f, which returns how long its load took and the CPU
// time of the client process it ran (0: the client ran in this process),
// and reads the CPU time of t's processes, the client and everything else
// around it.
func measurePhase(t nfsTarget, f func() (took, childCPU time.Duration, err error)) (Phase, error) {
	procs := t.procs()
	pids := make([]int, len(procs))
	before := make([]time.Duration, len(procs))
	for i, p := range procs {
		pids[i] = p.pid
		before[i], _ = readProcCPU("/proc/" + strconv.Itoa(p.pid) + "/stat")
	}
	self, _ := readProc("self")
	sysBefore, _ := readCPUTimes()
	var took, child time.Duration
	others, wall, err := watchTimed(func() []int { return pids }, func() (err error) {
		took, child, err = f()
		return err
	})
	var ph Phase
	ph.Seconds = took.Seconds()
	for i, p := range procs {
		after, _ := readProcCPU("/proc/" + strconv.Itoa(p.pid) + "/stat")
		ph.Servers = append(ph.Servers, ProcessCPU{PID: p.pid, Name: p.name, CPUPercent: percent(after-before[i], wall)})
	}
	selfAfter, _ := readProc("self")
	if child > 0 {
		ph.Client, ph.ClientCPUPercent = "nfs-cp", percent(child, wall)
		others = others.less(child, wall)
	} else {
		ph.Client, ph.ClientCPUPercent = "Go client", percent(selfAfter.cpu-self.cpu, wall)
	}
	ph.Others = others
	if sysAfter, err := readCPUTimes(); err == nil {
		ph.MachineBusyPercent = percent(sysAfter.busy-sysBefore.busy, sysAfter.total-sysBefore.total)
		ph.MachineIOWaitPercent = percent(sysAfter.iowait-sysBefore.iowait, sysAfter.total-sysBefore.total)
	}
	return ph, err
}

// mibPerSec is bytes per second in MiB (2^20 bytes).
func mibPerSec(bytes uint64, seconds float64) float64 {
	return ratio(float64(bytes)/(1<<20), seconds)
}
