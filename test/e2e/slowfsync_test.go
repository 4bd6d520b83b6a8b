package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// latencies are the durations of a phase's acknowledged writes.
type latencies []time.Duration

func (l latencies) pct(p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func (l latencies) String() string {
	return fmt.Sprintf("%d writes, p50 %v, p90 %v, max %v", len(l),
		l.pct(50).Round(time.Millisecond), l.pct(90).Round(time.Millisecond), l.pct(100).Round(time.Millisecond))
}

// maxTerm is the highest raft term any data node reports.
func maxTerm(t *testing.T, c *Cluster) uint64 {
	t.Helper()
	var term uint64
	for _, m := range c.DataMembers() {
		if st, err := m.Status(); err == nil {
			term = max(term, st.Raft.Term)
		}
	}
	return term
}

// timedWrites writes files of 64 KiB one after the other through the admin
// API (each acknowledged once committed on a quorum): at least n and for at
// least minDur (so that a slow disk sees many fsyncs), at most 10n or
// limit. It returns their latencies. Every write must succeed.
func timedWrites(t *testing.T, c *Cluster, acks *ackLog, phase string, n int, minDur, limit time.Duration) latencies {
	t.Helper()
	var out latencies
	start := time.Now()
	end := start.Add(limit)
	for i := 0; (i < n || time.Since(start) < minDur) && i < 10*n && time.Now().Before(end); i++ {
		path := fmt.Sprintf("/%s/f%03d", phase, i)
		data := content("data:"+path, 64<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		err := c.Client.PutFile(ctx, "data", path, data, true)
		d := time.Since(start)
		cancel()
		if err != nil {
			t.Errorf("%s: write %s failed after %v: %v", phase, path, d.Round(time.Millisecond), err)
			continue
		}
		acks.add(path, sum(data))
		out = append(out, d)
	}
	if len(out) < n/2 {
		t.Fatalf("%s: only %d of %d writes acknowledged within %v", phase, len(out), n, limit)
	}
	return out
}

// TestSlowFsync puts every data node's data directory on a faultfs and
// makes one disk slow: every fsync takes 250 ms longer. With a follower's
// disk slow, writes go on at about the healthy latency (the leader and the
// other follower are a quorum; a write waiting for the slow disk would take
// at least 250 ms). With the leader's disk slow, writes are slower (each
// waits for the leader's own fsync) but every one succeeds, and leadership
// stays where it is (heartbeats do not touch the disk). Once the disk is
// fast again, every node converges and holds every acknowledged file.
func TestSlowFsync(t *testing.T) {
	const delay = 250 * time.Millisecond
	c := initCluster(t, Shape{Data: 3})
	disks := mountDisks(t, c)
	c.StartAll()
	leader := c.WaitLeader(30*time.Second, "")
	c.createVolume("data", 1<<30)
	acks := &ackLog{}

	timedWrites(t, c, acks, "warmup", 10, 0, 60*time.Second)
	healthy := timedWrites(t, c, acks, "healthy", 40, 5*time.Second, 90*time.Second)
	t.Logf("healthy: %v", healthy)

	phase := func(name string, slow *Member) latencies {
		t.Helper()
		term := maxTerm(t, c)
		disks[slow.ID].fs.SetFsyncDelay(delay)
		syncs := disks[slow.ID].fs.Syncs()
		l := timedWrites(t, c, acks, name, 40, 5*time.Second, 120*time.Second)
		slowSyncs := disks[slow.ID].fs.Syncs() - syncs
		disks[slow.ID].fs.SetFsyncDelay(0)
		elections := maxTerm(t, c) - term
		t.Logf("%s (%s, fsync +%v, %d slow fsyncs): %v; raft term moved by %d", name, slow.ID, delay, slowSyncs, l, elections)
		if slowSyncs < 5 {
			t.Errorf("%s: only %d fsyncs on %s's slow disk: the delay was hardly exercised", name, slowSyncs, slow.ID)
		}
		if elections > 1 {
			t.Errorf("%s: %d elections while %s's disk was slow; want at most 1", name, elections, slow.ID)
		}
		return l
	}

	follower := c.otherData(leader)[0]
	slowFollower := phase("slow-follower", follower)
	// A write that waited for the slow follower's fsync would take at least
	// the delay; the median must be below it.
	if p := slowFollower.pct(50); p >= delay {
		t.Errorf("with %s's disk slow, the median write took %v (healthy %v): writes wait for the slow follower",
			follower.ID, p.Round(time.Millisecond), healthy.pct(50).Round(time.Millisecond))
	}

	if st := c.Status(); st.Leader != leader.ID {
		t.Logf("note: leadership moved from %s to %s", leader.ID, st.Leader)
		leader = c.Member(st.Leader)
	}
	slowLeader := phase("slow-leader", leader)
	if p := slowLeader.pct(50); p < delay {
		t.Logf("note: with the leader's disk slow the median write took %v, less than the delay %v", p, delay)
	}

	// Disks fast again: the nodes converge and hold every acknowledged file.
	timedWrites(t, c, acks, "after", 10, 0, 60*time.Second)
	hs := waitConverged(t, c.DataMembers(), 90*time.Second)
	checkAcked(t, c.DataMembers(), acks.all())
	t.Logf("converged at index %d with %d acknowledged files on every node; healthy %v | slow follower %v | slow leader %v",
		hs[0].AppliedIndex, len(acks.all()), healthy, slowFollower, slowLeader)
}
