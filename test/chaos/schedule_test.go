//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"keel/internal/testkit"
)

// faultKind is one kind of fault of the schedule.
type faultKind string

const (
	faultKill9     faultKind = "kill-9"         // SIGKILL, restart after For
	faultPause     faultKind = "pause"          // SIGSTOP for For (beyond the election timeout), SIGCONT
	faultPartition faultKind = "partition"      // every raft link into and out of the node lost for For
	faultOneWay    faultKind = "one-way-loss"   // every raft byte From→To lost for For, the other way passes
	faultTunnelCut faultKind = "tunnel-cut"     // the node's admin port (tunnels, peers) blackholed for For
	faultCatchUp   faultKind = "catch-up-crash" // kill, restart after For, kill again After into its catch-up, restart
	faultInstall   faultKind = "install-crash"  // kill, restart after For, kill again while it installs a snapshot (if it needs one), restart
	faultSlowFsync faultKind = "slow-fsync"     // every file fsync in the node's data directory takes Delay longer, for For
	faultPowerLoss faultKind = "power-loss"     // SIGKILL and every unsynced byte of the node's data directory dropped; restart after For
	faultDiskFull  faultKind = "disk-full"      // the node's data disk full (ext4-like: allocated blocks can be rewritten) for For
)

// leaderTarget in a fault's Target means "whichever data node leads when
// the fault starts".
const leaderTarget = "leader"

// fault is one entry of the schedule: a pure function of the seed, so the
// same seed replays the same schedule (which node "leader" resolves to
// depends on the run).
type fault struct {
	Start  time.Duration // since the start of the fault phase
	Kind   faultKind
	Target string        // node id or leaderTarget
	To     string        // one-way loss: the receiving side
	For    time.Duration // how long the fault lasts
	After  time.Duration // catch-up-crash: time from the restart to the second kill
	Delay  time.Duration // slow-fsync: added to every fsync
}

func (f fault) String() string {
	s := fmt.Sprintf("+%5.1fs %-14s %-6s", f.Start.Seconds(), f.Kind, f.Target)
	if f.To != "" {
		s += "→" + f.To
	}
	s += fmt.Sprintf(" for %v", f.For.Round(time.Millisecond))
	if f.After > 0 {
		s += fmt.Sprintf(", again %v into catch-up", f.After.Round(time.Millisecond))
	}
	if f.Delay > 0 {
		s += fmt.Sprintf(", fsync +%v", f.Delay.Round(time.Millisecond))
	}
	return s
}

// makeSchedule draws faults for total from seed: one fault at a time,
// 1-3 s apart, aimed at the leader half of the time.
func makeSchedule(seed int64, nodes []string, total time.Duration) []fault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b65656c))
	kinds := []faultKind{faultKill9, faultKill9, faultPause, faultPause, faultPartition, faultPartition, faultOneWay, faultTunnelCut, faultCatchUp, faultInstall, faultSlowFsync, faultPowerLoss, faultDiskFull}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	pick := func() string {
		if rng.IntN(2) == 0 {
			return leaderTarget
		}
		return nodes[rng.IntN(len(nodes))]
	}
	var out []fault
	at := 2 * time.Second
	for at < total {
		f := fault{Start: at, Kind: kinds[rng.IntN(len(kinds))], Target: pick()}
		switch f.Kind {
		case faultKill9:
			f.For = between(time.Second, 5*time.Second)
		case faultPause:
			f.For = between(1200*time.Millisecond, 4*time.Second) // election timeout 500 ms
		case faultPartition, faultTunnelCut:
			f.For = between(1500*time.Millisecond, 5*time.Second)
		case faultOneWay:
			f.For = between(1500*time.Millisecond, 5*time.Second)
			for f.To == "" || f.To == f.Target {
				f.To = nodes[rng.IntN(len(nodes))]
			}
		case faultCatchUp:
			f.For = between(2*time.Second, 5*time.Second)
			f.After = between(100*time.Millisecond, 1500*time.Millisecond)
		case faultInstall:
			f.For = between(5*time.Second, 9*time.Second) // beyond a snapshot interval (5 s)
		case faultSlowFsync:
			f.For = between(2*time.Second, 6*time.Second)
			f.Delay = between(50*time.Millisecond, 400*time.Millisecond)
		case faultPowerLoss:
			f.For = between(time.Second, 5*time.Second)
		case faultDiskFull:
			f.For = between(2*time.Second, 6*time.Second)
		}
		out = append(out, f)
		at += f.For + f.After + between(time.Second, 3*time.Second)
	}
	return out
}

func formatSchedule(s []fault) string {
	var b strings.Builder
	for _, f := range s {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

// run injects f and heals it; it returns the node ids it resolved.
func (c *chaosCluster) run(f fault, stop <-chan struct{}) string {
	target := f.Target
	if target == leaderTarget {
		target = c.leader()
		if target == "" {
			target = c.dataNodes()[0].id
		}
	}
	to := f.To
	if to == target || to == leaderTarget {
		for _, n := range c.nodes {
			if n.id != target {
				to = n.id
				break
			}
		}
	}
	sleep := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-stop:
		}
	}
	n := c.node(target)
	switch f.Kind {
	case faultKill9:
		n.kill()
		sleep(f.For)
		n.start()
	case faultPause:
		n.pause()
		sleep(f.For)
		n.resume()
	case faultPartition:
		for k, p := range c.raft {
			if k[0] == target || k[1] == target {
				p.SetMode(testkit.Blackhole)
			}
		}
		sleep(f.For)
		for k, p := range c.raft {
			if k[0] == target || k[1] == target {
				p.SetMode(testkit.Pass)
			}
		}
	case faultOneWay:
		// What target sends to `to` is lost, on the connections either
		// side opened; what `to` sends back passes.
		c.raft[[2]string{target, to}].SetMode(testkit.DropToTarget)
		c.raft[[2]string{to, target}].SetMode(testkit.DropFromTarget)
		sleep(f.For)
		c.raft[[2]string{target, to}].SetMode(testkit.Pass)
		c.raft[[2]string{to, target}].SetMode(testkit.Pass)
		target += "→" + to
	case faultTunnelCut:
		c.admin[target].SetMode(testkit.Blackhole)
		sleep(f.For)
		c.admin[target].SetMode(testkit.Pass)
	case faultCatchUp:
		n.kill()
		sleep(f.For)
		n.start()
		sleep(f.After)
		n.kill()
		sleep(time.Second)
		n.start()
	case faultSlowFsync:
		if why := c.skipDisk(n); why != "" {
			target += why
			break
		}
		c.slowFsync(n, f.Delay, f.For, sleep)
	case faultPowerLoss:
		if why := c.skipDisk(n); why != "" {
			target += why
			break
		}
		target += fmt.Sprintf(" (%d unsynced bytes dropped)", c.powerLoss(n, f.For, sleep))
	case faultDiskFull:
		if why := c.skipDisk(n); why != "" {
			target += why
			break
		}
		c.diskFull(n, f.For, sleep)
	case faultInstall:
		n.kill()
		c.fill(f.For, stop) // the log passes whole segments: the node will need a snapshot
		n.start()
		if c.waitInstall(n, 8*time.Second, stop) {
			n.kill()
			c.installKills++
			target += " (killed mid-install)"
			sleep(time.Second)
			n.start()
		} else {
			target += " (caught up without a snapshot install)"
		}
	}
	return target
}

// fill overwrites three 1 MiB files under /fill of the data volume through
// the admin API for d (the checkers look only at their own directories),
// so that the leader's log moves past whole 1 MiB segments and compacts
// them after its next snapshot.
func (c *chaosCluster) fill(d time.Duration, stop <-chan struct{}) {
	end := time.Now().Add(d)
	buf := make([]byte, 1<<20)
	for i := 0; time.Now().Before(end); i++ {
		if i < 12 { // 12 MiB at most; then wait out d
			buf[0] = byte(i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.client.PutFile(ctx, "data", fmt.Sprintf("/fill/f%d", i%3), buf, true) // best effort: a fault may be healing
			cancel()
			continue
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Until(end)):
		}
	}
}

// waitInstall polls n's status (its real admin port) until it reports a
// snapshot install in progress, for at most d; after 2 s, a node whose
// applied index is within 16 entries of its commit index caught up from
// the log and is not waited for.
func (c *chaosCluster) waitInstall(n *chaosNode, d time.Duration, stop <-chan struct{}) bool {
	start := time.Now()
	for time.Since(start) < d {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.client.NodeStatus(ctx, n.adminAddr)
		cancel()
		if err == nil {
			r := st.Raft
			if r.SnapshotInstall != nil {
				return true
			}
			if time.Since(start) > 2*time.Second && r.CommitIndex > 0 && r.AppliedIndex+16 >= r.CommitIndex {
				return false
			}
		}
		select {
		case <-stop:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// TestScheduleIsAFunctionOfTheSeed: the same seed gives the same schedule,
// another seed another one.
func TestScheduleIsAFunctionOfTheSeed(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	a, b := makeSchedule(42, nodes, time.Minute), makeSchedule(42, nodes, time.Minute)
	if formatSchedule(a) != formatSchedule(b) || len(a) < 5 {
		t.Fatalf("seed 42 twice:\n%s\n%s", formatSchedule(a), formatSchedule(b))
	}
	if formatSchedule(makeSchedule(43, nodes, time.Minute)) == formatSchedule(a) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
}
