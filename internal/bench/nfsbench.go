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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// NFSOptions say what RunNFS measures and where.
type NFSOptions struct {
	Dir        string    // parent of the per-run temporary directory; default os.TempDir()
	Size       uint64    // bytes of the sequential copy
	Files      int       // files of the metadata loop
	Workers    int       // connections of the metadata loop
	Executable string    // the keel binary
	Progress   io.Writer // progress lines; nil discards them
}

// DefaultNFSOptions returns the standard run: 256 MiB, 10,000 files from
// 8 connections.
func DefaultNFSOptions() NFSOptions {
	return NFSOptions{Size: 256 << 20, Files: 10000, Workers: 8}
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
	nfsSpaceTimes = 12 // free space needed, in multiples of Size, beyond nfsSpaceExtra
)

// nfsTarget is one server under test.
type nfsTarget struct {
	nfsAddr, mountAddr string
	procs              func() []procRef // its processes
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
	res := &NFSResult{Dir: runDir, CPUs: runtime.NumCPU(), SizeBytes: o.Size, Files: o.Files, Workers: o.Workers}
	for _, kind := range []string{KindKeel1, KindKeel3, KindGanesha} {
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
func (o *NFSOptions) measureServer(ctx context.Context, runDir, kind, src, probeSrc string) (NFSServerResult, error) {
	dir := filepath.Join(runDir, kind)
	defer os.RemoveAll(dir)
	sr := NFSServerResult{Kind: kind}
	var t nfsTarget
	switch kind {
	case KindKeel1, KindKeel3:
		n := 1
		if kind == KindKeel3 {
			n = 3
		}
		sr.Name = clusterLabel(n)
		sr.Durability = fmt.Sprintf("committed on %d of %d nodes, each fsync'd, before the reply", n/2+1, n)
		progressf(o.Progress, "nfs: %s: starting the `keel serve` processes in %s", sr.Name, dir)
		c, err := startCluster(ctx, o.Executable, dir, n)
		if err != nil {
			return sr, err
		}
		defer c.stop()
		if err := exportData(ctx, c.client, 2*o.Size+nfsSpaceExtra); err != nil {
			return sr, err
		}
		for _, p := range c.client.Peers {
			if p.ID == c.leader {
				t.nfsAddr, t.mountAddr = p.NFSAddr, p.NFSAddr
			}
		}
		t.procs = func() []procRef {
			var out []procRef
			for _, p := range c.nodes {
				out = append(out, procRef{name: p.id, pid: p.pid()})
			}
			return out
		}
		if err := waitNFS(ctx, t.nfsAddr); err != nil {
			return sr, errors.Join(err, c.failed())
		}
		err = o.runLoads(ctx, &sr, t, src, probeSrc)
		return sr, errors.Join(err, c.failed())
	default:
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
		sr.Durability = "WRITE UNSTABLE: in the kernel's page cache at the reply; COMMIT → fsync"
		t = nfsTarget{nfsAddr: g.nfsAddr, mountAddr: g.mountAddr,
			procs: func() []procRef { return []procRef{{name: "ganesha.nfsd", pid: g.pid()}} }}
		if err := o.runLoads(ctx, &sr, t, src, probeSrc); err != nil {
			sr.Error = err.Error()
			progressf(o.Progress, "nfs: ganesha: %v", err)
			return sr, ctx.Err()
		}
		return sr, nil
	}
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
// loop against t, filling in sr.
func (o *NFSOptions) runLoads(ctx context.Context, sr *NFSServerResult, t nfsTarget, src, probeSrc string) error {
	_, nfsPort := splitPort(t.nfsAddr)
	_, mountPort := splitPort(t.mountAddr)
	progressf(o.Progress, "nfs: %s: probe: nfs-cp of %s through a counting proxy", sr.Name, formatBytes(probeSize))
	sr.Probe = probeNFSCp(ctx, probeSrc, probeSize, t.nfsAddr, t.mountAddr, "probe.bin")
	progressf(o.Progress, "nfs: %s: nfs-cp sent %s", sr.Name, sr.Probe.Text())
	if err := ctx.Err(); err != nil {
		return err
	}

	url := nfsURL("127.0.0.1", nfsPort, mountPort, "seq.bin")
	progressf(o.Progress, "nfs: %s: write: nfs-cp %s in", sr.Name, formatBytes(o.Size))
	var err error
	sr.Write, err = measurePhase(t, func() (time.Duration, time.Duration, error) {
		r, err := runNFSCp(ctx, src, url, o.Size)
		return r.took, r.cpu, err
	})
	if err != nil {
		return err
	}
	sr.Write.MiBps = mibPerSec(o.Size, sr.Write.Seconds)
	progressf(o.Progress, "nfs: %s: write %.1f MiB/s", sr.Name, sr.Write.MiBps)

	out := filepath.Join(filepath.Dir(src), "out.bin")
	defer os.Remove(out)
	progressf(o.Progress, "nfs: %s: read: nfs-cp %s out", sr.Name, formatBytes(o.Size))
	sr.Read, err = measurePhase(t, func() (time.Duration, time.Duration, error) {
		r, err := runNFSCp(ctx, url, out, o.Size)
		return r.took, r.cpu, err
	})
	if err != nil {
		return err
	}
	sr.Read.MiBps = mibPerSec(o.Size, sr.Read.Seconds)
	if err := sameFiles(src, out); err != nil {
		return fmt.Errorf("the file read back is not the one written: %w", err)
	}
	os.Remove(out)
	progressf(o.Progress, "nfs: %s: read %.1f MiB/s, same bytes", sr.Name, sr.Read.MiBps)

	progressf(o.Progress, "nfs: %s: metadata: %d × CREATE + GETATTR + REMOVE from %d connections", sr.Name, o.Files, o.Workers)
	dir, err := metaSetup(ctx, t.nfsAddr, t.mountAddr)
	if err != nil {
		return err
	}
	sr.MetaCPU, err = measurePhase(t, func() (time.Duration, time.Duration, error) {
		start := time.Now()
		sr.Meta, err = runMeta(ctx, t.nfsAddr, dir, o.Files, o.Workers)
		return time.Since(start), 0, err
	})
	if err != nil {
		return err
	}
	progressf(o.Progress, "nfs: %s: metadata %.0f ops/s", sr.Name, sr.Meta.OpsPerSec)
	return nil
}

func splitPort(addr string) (string, int) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, _ := strconv.Atoi(addr[i+1:])
			return addr[:i], p
		}
	}
	return addr, 0
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
	if err != nil {
		return Phase{}, err
	}
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
	return ph, nil
}

// mibPerSec is bytes per second in MiB (2^20 bytes).
func mibPerSec(bytes uint64, seconds float64) float64 {
	return ratio(float64(bytes)/(1<<20), seconds)
}
