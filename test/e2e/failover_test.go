package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestKillLeaderWhileWriting kills the leader with SIGKILL while a client
// writes files: a different node takes over, the client (following leader
// hints and retrying) keeps writing, and every acknowledged file reads back
// from the new leader with the content that was written. The old leader then
// restarts and converges to the same state.
func TestKillLeaderWhileWriting(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.createVolume("data", 1<<30)

	acks := &ackLog{}
	w := &writer{client: c.Client, vol: "data", prefix: "stream", acks: acks,
		size:    func(i int) int { return 2048 + (i%16)*1024 },
		retries: 5, timeout: 15 * time.Second}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	stopWriter := func() { stop(); <-done }
	t.Cleanup(stopWriter) // before the cluster is torn down

	waitFor(t, 20*time.Second, "20 acknowledged writes", func() (bool, string) {
		n := len(acks.all())
		return n >= 20, fmt.Sprintf("%d acknowledged", n)
	})
	old := c.WaitLeader(10*time.Second, "")
	killedAt := time.Now()
	old.Kill9()
	t.Logf("killed leader %s (kill -9) after %d acknowledged writes", old.ID, len(acks.all()))

	leader := c.WaitLeader(15*time.Second, old.ID)
	electedAt := time.Now()
	t.Logf("%s is the new leader, seen %v after the kill", leader.ID, electedAt.Sub(killedAt).Round(time.Millisecond))

	waitFor(t, 30*time.Second, "20 writes acknowledged after the failover", func() (bool, string) {
		n := acks.countSince(electedAt)
		return n >= 20, fmt.Sprintf("%d acknowledged since the new leader was seen", n)
	})
	stopWriter()

	for _, e := range w.errorsBefore(killedAt) {
		t.Errorf("a write failed while every node was up: %v", e.Err)
	}
	if gave := w.abandoned(); len(gave) > 0 {
		t.Errorf("the client gave up on %d writes despite retrying through the failover: %v", len(gave), gave)
	}
	var firstAfter time.Time
	for _, a := range acks.all() {
		if a.At.After(killedAt) {
			firstAfter = a.At
			break
		}
	}
	t.Logf("writes resumed %v after the kill; %d acknowledged in all, %d after the kill",
		firstAfter.Sub(killedAt).Round(time.Millisecond), len(acks.all()), acks.countSince(killedAt))

	// Every acknowledged write, read through the leader (a linearizable
	// read) and from the new leader's own copy.
	if st := c.Status(); st.Leader != leader.ID {
		t.Logf("note: leadership moved on to %q during the test", st.Leader)
	}
	for _, a := range acks.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := c.Client.GetFile(ctx, "data", a.Path)
		cancel()
		if err != nil {
			t.Errorf("acknowledged file %s: read: %v", a.Path, err)
			continue
		}
		if s := sum(got); s != a.Sum {
			t.Errorf("acknowledged file %s: read back %d bytes with sha256 %s, want %s", a.Path, len(got), s, a.Sum)
		}
		if s, err := leader.FileSum("data", a.Path); err != nil || s != a.Sum {
			t.Errorf("acknowledged file %s on the new leader %s: sha256 %q (err %v), want %s", a.Path, leader.ID, s, err, a.Sum)
		}
	}

	// The killed leader comes back, catches up and holds the same.
	old.Start()
	waitConverged(t, c.DataMembers(), 30*time.Second)
	checkAcked(t, []*Member{old}, acks.all())
}

// TestKillAllDuringWrites kills every node at once (SIGKILL) while several
// clients write, restarts them all, and checks that every acknowledged write
// is on every data node with the same content, and that the nodes' state
// digests agree once they have applied the same index. (Restarting again
// after such a crash is TestRestartAfterLogTruncation.)
func TestKillAllDuringWrites(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.createVolume("data", 1<<30)

	acks := &ackLog{}
	killAllDuringWrites(t, c, acks)
	hashes := waitConverged(t, c.DataMembers(), 60*time.Second)
	t.Logf("converged: %v", hashes)
	checkAcked(t, c.DataMembers(), acks.all())
}

// killAllDuringWrites runs four writers, kills every node at once when 100
// more writes have been acknowledged, then restarts the cluster.
func killAllDuringWrites(t *testing.T, c *Cluster, acks *ackLog) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writers []*writer
	for i := 0; i < 4; i++ {
		w := &writer{client: c.Client, vol: "data", prefix: fmt.Sprintf("w%d", i), acks: acks,
			size:    func(j int) int { return 1024 + ((i*7+j)%64)*1024 }, // 1-64 KiB
			timeout: 10 * time.Second}
		writers = append(writers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	stopWriters := func() { stop(); wg.Wait() }
	defer stopWriters()

	before := len(acks.all())
	waitFor(t, 30*time.Second, "100 more acknowledged writes", func() (bool, string) {
		n := len(acks.all()) - before
		return n >= 100, fmt.Sprintf("%d acknowledged", n)
	})
	killedAt := time.Now()
	for _, m := range c.Members { // all at once, then wait for each
		m.signal(syscall.SIGKILL)
	}
	for _, m := range c.Members {
		m.kill()
	}
	stopWriters()
	t.Logf("killed every node (kill -9) with %d writes acknowledged", len(acks.all()))
	for _, w := range writers {
		for _, e := range w.errorsBefore(killedAt) {
			t.Errorf("a write failed while every node was up: %v", e.Err)
		}
	}
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
}

// checkAcked requires every acknowledged write on every member, read from
// the member's own state.
func checkAcked(t *testing.T, members []*Member, acked []ack) {
	t.Helper()
	bad := 0
	for _, m := range members {
		for _, a := range acked {
			s, err := m.FileSum("data", a.Path)
			if err != nil || s != a.Sum {
				bad++
				if bad <= 20 {
					t.Errorf("acknowledged file %s on %s: sha256 %q (err %v), want %s", a.Path, m.ID, s, err, a.Sum)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d acknowledged (node, file) pairs missing or different", bad)
	}
}

// waitConverged waits until every member reports the same applied index in
// two polls in a row, then requires their state digests to be equal.
func waitConverged(t *testing.T, members []*Member, timeout time.Duration) []cluster.StateHash {
	t.Helper()
	var hs []cluster.StateHash
	prev := ""
	waitFor(t, timeout, "every data node to apply the same index", func() (bool, string) {
		hs = hs[:0]
		for _, m := range members {
			h, err := m.Hash()
			if err != nil {
				prev = ""
				return false, fmt.Sprintf("%s: %v", m.ID, err)
			}
			hs = append(hs, h)
		}
		key := fmt.Sprint(hs)
		for _, h := range hs[1:] {
			if h.AppliedIndex != hs[0].AppliedIndex {
				prev = ""
				return false, key
			}
		}
		// Equal is not enough: just after a restart every node is at the
		// state it flushed last, the same on all of them, until a leader
		// commits an entry of its term and they replay the log up to it.
		if err := leaderCommitted(members[0].c); err != nil {
			prev = ""
			return false, fmt.Sprintf("%s; %v", key, err)
		}
		stable := key == prev
		prev = key
		return stable, key
	})
	for _, h := range hs[1:] {
		if h.Hash != hs[0].Hash {
			t.Errorf("state diverged at applied index %d: %s has hash %s, %s has %s", h.AppliedIndex, hs[0].ID, hs[0].Hash, h.ID, h.Hash)
		}
	}
	return hs
}

// leaderCommitted fails unless the cluster has a leader that has
// committed an entry of its own term (its commit index is 0 until then:
// raft commits the entries of earlier terms only with one of its own).
func leaderCommitted(c *Cluster) error {
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		if st, err := m.Status(); err == nil && st.Raft.State == "leader" {
			if st.Raft.CommitIndex == 0 {
				return fmt.Errorf("leader %s has committed nothing of its term yet", m.ID)
			}
			return nil
		}
	}
	return fmt.Errorf("no leader")
}
