package bench

// `keel bench failover`: how long an NFS client through `keel tunnel` waits
// when the active node dies, and whether it ever sees an error or loses an
// acknowledged write.
//
// RunFailover starts three real `keel serve` data nodes, exports the volume
// "data" to 127.0.0.0/8 with no_root_squash, serves an in-process tunnel on
// a free loopback port and runs one client through it (see
// failover_client.go). Each trial finds the active node (the raft leader)
// with Status, kills it with SIGKILL, waits until the client's operations
// have been succeeding again for resumedFor, restarts the killed node and
// waits until it has applied everything the leader had committed when it
// came back. At the end every acknowledged file is read back through the
// tunnel. Nothing is asserted: the figures are compared with the targets
// (see EvaluateFailover).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/tunnel"
)

// FailoverOptions say how many trials RunFailover makes and where.
type FailoverOptions struct {
	Dir        string    // parent of the per-run temporary directory; default os.TempDir()
	Trials     int       // kills of the active node; the targets are judged on at least MinTrials
	Executable string    // the keel binary
	Progress   io.Writer // progress lines; nil discards them
}

// DefaultFailoverOptions returns the standard run: 10 trials.
func DefaultFailoverOptions() FailoverOptions { return FailoverOptions{Trials: MinTrials} }

// MinTrials is the fewest trials the targets are judged on.
const MinTrials = 10

const (
	resumedFor  = 2 * time.Second   // operations must have been succeeding this long before the killed node restarts
	resumeMax   = 90 * time.Second  // a trial whose operations have not resumed by then gives up
	catchUpMax  = 120 * time.Second // for the restarted node to catch up
	healthyMax  = 60 * time.Second  // for every node to answer and one to lead, before a kill
	warmupOps   = 50                // successful operations before the first kill
	warmupMax   = 60 * time.Second
	checkers    = 4 // concurrent readers of the final check
	pollEvery   = 50 * time.Millisecond
	statusEvery = 200 * time.Millisecond
)

// RunFailover runs the fail-over benchmark and returns its figures with the
// target checks filled in.
func RunFailover(ctx context.Context, o FailoverOptions) (*FailoverResult, error) {
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Trials <= 0 || o.Executable == "" {
		return nil, errors.New("bench: fail-over needs at least one trial and the keel executable")
	}
	runDir, err := os.MkdirTemp(o.Dir, "keel-bench-failover-")
	if err != nil {
		return nil, fmt.Errorf("bench: make the run directory: %w", err)
	}
	defer os.RemoveAll(runDir)

	progressf(o.Progress, "failover: starting 3 `keel serve` data nodes in %s", runDir)
	c, err := startCluster(ctx, o.Executable, filepath.Join(runDir, "cluster"), 3)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	if err := exportData(ctx, c.client, 1<<30); err != nil {
		return nil, err
	}

	tctx, stopTunnel := context.WithCancel(ctx)
	defer stopTunnel()
	tl, addr, err := startTunnel(tctx, c, filepath.Join(runDir, "tunnel.log"))
	if err != nil {
		return nil, err
	}

	raft := config.DefaultRaft()
	res := &FailoverResult{Dir: runDir, CPUs: runtime.NumCPU(), TrialsRequested: o.Trials, DataNodes: len(c.nodes),
		HeartbeatTimeout: raft.HeartbeatTimeout.String(), ElectionTimeout: raft.ElectionTimeout.String(),
		LeaderLease: raft.LeaderLeaseTimeout.String()}
	log := &opLog{}
	cctx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan struct{})
	go func() { defer close(clientDone); runFailoverClient(cctx, addr, log) }()
	stop := func() {
		stopClient()
		select {
		case <-clientDone:
		case <-time.After(opTimeout + 10*time.Second):
		}
	}
	defer stop()

	progressf(o.Progress, "failover: client through the tunnel at %s: create, 4 KiB FILE_SYNC write, read back, one file per operation", addr)
	if err := waitOps(ctx, log, warmupOps, warmupMax); err != nil {
		return nil, errors.Join(err, c.failed())
	}
	for k := 1; k <= o.Trials; k++ {
		tr, err := runTrial(ctx, c, tl, log, k)
		if err != nil {
			return nil, err
		}
		res.Trials = append(res.Trials, tr)
		progressf(o.Progress, "failover: trial %d/%d: killed %s; gap %s; %s active; %s; %d client errors since the kill", k, o.Trials, tr.Killed,
			gapText(tr), orNone(tr.NewActive), catchUpText(tr), failuresSince(log.snapshot(), tr.KilledAt))
		if !tr.Resumed || !tr.CaughtUp {
			progressf(o.Progress, "failover: stopping after trial %d: the cluster did not recover within the bounds", k)
			break
		}
	}
	stop()

	ops := log.snapshot()
	res.addOps(ops)
	progressf(o.Progress, "failover: reading back the %d acknowledged files through the tunnel", res.Acked)
	if res.Lost, err = checkAcked(ctx, addr, ops); err != nil {
		return nil, err
	}
	res.Checks = EvaluateFailover(res)
	return res, c.failed()
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "bench: "+format+"\n", args...)
	}
}

// exportData creates the volume "data" and exports it read-write to
// 127.0.0.0/8 with no_root_squash, as /data.
func exportData(ctx context.Context, c *cluster.Client, size uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.CreateVolume(ctx, "data", size); err != nil {
		return fmt.Errorf("bench: create the volume: %w", err)
	}
	if _, err := c.SetExport(ctx, "data", cluster.ExportInfo{Clients: []string{"127.0.0.0/8"}, Squash: "no_root_squash"}); err != nil {
		return fmt.Errorf("bench: export the volume: %w", err)
	}
	return nil
}

// startTunnel serves a tunnel to c on a free loopback port until ctx ends,
// logging warnings to logPath.
func startTunnel(ctx context.Context, c *localCluster, logPath string) (*tunnel.Tunnel, string, error) {
	cc, err := config.LoadClient(c.clientConfig)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	tc, err := cluster.TLSConfig(cc)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	go func() { <-ctx.Done(); lf.Close() }()
	tl := tunnel.New(cc.Peers, tc, slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("bench: listen for the tunnel: %w", err)
	}
	go func() { _ = tl.Serve(ctx, ln) }()
	return tl, ln.Addr().String(), nil
}

// waitOps waits until n operations have succeeded.
func waitOps(ctx context.Context, log *opLog, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for log.successes() < n {
		if time.Now().After(deadline) {
			ops := log.snapshot()
			last := "none"
			if len(ops) > 0 {
				last = ops[len(ops)-1].Err
			}
			return fmt.Errorf("bench: fewer than %d operations succeeded through the tunnel in %s (last error: %s)", n, limit, last)
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitHealthy waits until every node answers and one leads.
func waitHealthy(ctx context.Context, c *localCluster, limit time.Duration) (cluster.Status, error) {
	deadline := time.Now().Add(limit)
	for {
		if err := c.failed(); err != nil {
			return cluster.Status{}, err
		}
		st := c.client.Status(ctx, time.Second)
		if st.Healthy && st.Leader != "" {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("bench: the cluster had no leader with every node up after %s", limit)
		}
		if err := sleepCtx(ctx, statusEvery); err != nil {
			return st, err
		}
	}
}

// runTrial kills the active node, waits for the client to resume, restarts
// the node and waits for it to catch up.
func runTrial(ctx context.Context, c *localCluster, tl *tunnel.Tunnel, log *opLog, k int) (Trial, error) {
	st, err := waitHealthy(ctx, c, healthyMax)
	if err != nil {
		return Trial{}, err
	}
	victim := c.node(st.Leader)
	if victim == nil {
		return Trial{}, fmt.Errorf("bench: the leader %q is none of the nodes started", st.Leader)
	}
	tr := Trial{N: k, Killed: victim.id, KilledPID: victim.pid()}
	statPath := "/proc/" + strconv.Itoa(victim.pid()) + "/stat"
	cpuStart, _ := readProcCPU(statPath)
	var victimCPU time.Duration
	tunBefore := tl.Status()
	others, wall, err := watchTimed(c.pids, func() error {
		if cpu, err := readProcCPU(statPath); err == nil {
			victimCPU = cpu - cpuStart
		}
		tr.KilledAt = time.Now()
		if err := c.kill9(victim.id); err != nil {
			return err
		}
		if err := waitResumed(ctx, c, log, &tr); err != nil {
			return err
		}
		if err := c.restart(victim.id); err != nil {
			return err
		}
		return waitCaughtUp(ctx, c, &tr)
	})
	if err != nil {
		return tr, err
	}
	tr.Others = others.less(victimCPU, wall)
	tunAfter := tl.Status()
	tr.TunnelReconnects, tr.TunnelResent = tunAfter.Reconnects-tunBefore.Reconnects, tunAfter.Resent-tunBefore.Resent
	if tunAfter.ActiveNode != victim.id && tunAfter.Since.After(tr.KilledAt) {
		tr.TunnelMs = ms(tunAfter.Since.Sub(tr.KilledAt))
	}
	if before, after, ok := gapAround(log.snapshot(), tr.KilledAt); ok && tr.Resumed {
		tr.GapMs = ms(after.End.Sub(before.End))
		tr.KillToResumeMs = ms(after.End.Sub(tr.KilledAt))
	}
	return tr, nil
}

// waitResumed waits until operations have been succeeding again for
// resumedFor after the kill; past resumeMax it gives up and marks the trial
// not resumed, its gap the time waited.
func waitResumed(ctx context.Context, c *localCluster, log *opLog, tr *Trial) error {
	for {
		if err := c.failed(); err != nil {
			return err
		}
		if first, ok := log.firstOKAfter(tr.KilledAt); ok && time.Since(first.End) >= resumedFor {
			tr.Resumed = true
			return nil
		}
		if waited := time.Since(tr.KilledAt); waited > resumeMax {
			tr.GapMs = ms(waited)
			return nil
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// waitCaughtUp waits until the restarted node tr.Killed has applied the
// leader's commit index as of the first time it answered after its
// restart; past catchUpMax it gives up and marks the trial not caught up.
func waitCaughtUp(ctx context.Context, c *localCluster, tr *Trial) error {
	start := time.Now()
	for {
		if err := c.failed(); err != nil {
			return err
		}
		st := c.client.Status(ctx, time.Second)
		var leader, me *cluster.NodeStatus
		for _, m := range st.Nodes {
			if m.Node == nil {
				continue
			}
			if m.ID == st.Leader {
				leader = m.Node
			}
			if m.ID == tr.Killed {
				me = m.Node
			}
		}
		if leader != nil {
			tr.NewActive = leader.ID
			if a := leader.Active; a != nil && a.Since.After(tr.KilledAt) {
				tr.ElectedMs, tr.ElectedReason = ms(a.Since.Sub(tr.KilledAt)), a.Reason
			}
		}
		if tr.CatchUpIndex == 0 && leader != nil && me != nil {
			tr.CatchUpIndex = leader.Raft.CommitIndex
		}
		if tr.CatchUpIndex > 0 && me != nil && me.Raft.AppliedIndex >= tr.CatchUpIndex {
			tr.CaughtUp, tr.CatchUpSeconds = true, time.Since(start).Seconds()
			return nil
		}
		if time.Since(start) > catchUpMax {
			tr.CatchUpSeconds = time.Since(start).Seconds()
			return nil
		}
		if err := sleepCtx(ctx, statusEvery); err != nil {
			return err
		}
	}
}

// checkAcked reads every acknowledged file of ops back through the tunnel
// at addr, with checkers connections.
func checkAcked(ctx context.Context, addr string, ops []opRecord) (LostWrites, error) {
	var files []int
	for _, r := range ops {
		if r.Acked {
			files = append(files, r.N)
		}
	}
	var (
		mu   sync.Mutex
		lost LostWrites
		next int
		wg   sync.WaitGroup
		errs []error
	)
	lost.Checked = len(files)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(files) || ctx.Err() != nil {
			return 0, false
		}
		next++
		return files[next-1], true
	}
	for range checkers {
		wg.Go(func() {
			var conn *nfsConn
			defer func() { conn.close() }()
			for i, ok := take(); ok; i, ok = take() {
				res, err := checkAttempts(ctx, addr, &conn, i)
				mu.Lock()
				lost.add(i, res, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return lost, errors.Join(errs...)
}

// checkAttempts checks file i, up to three times while the transport fails,
// (re)connecting *conn as needed.
func checkAttempts(ctx context.Context, addr string, conn **nfsConn, i int) (checkResult, error) {
	var err error
	for range 3 {
		if *conn == nil {
			if *conn, err = dialMount(ctx, addr, addr); err != nil {
				if sleepCtx(ctx, 200*time.Millisecond) != nil {
					break
				}
				continue
			}
		}
		var res checkResult
		res, err = checkFile(ctx, *conn, i)
		if res != checkUnreadable {
			return res, nil
		}
		(*conn).close()
		*conn = nil
	}
	return checkUnreadable, err
}
