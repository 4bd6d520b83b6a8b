package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestDeposedLeaderStopsServing pauses the leader (SIGSTOP) for longer than
// the election timeout, as a partition would cut it off: another node takes
// over and writes through the tunnel go on while the old leader is paused.
// When the old leader is continued (SIGCONT) it must not serve: keel status
// shows it a follower within a few seconds, and a write sent straight to
// its own NFS port fails and leaves nothing behind. No acknowledged write is
// lost: every file, those written during the pause included, is the same on
// every data node afterwards.
func TestDeposedLeaderStopsServing(t *testing.T) {
	requireLibnfs(t)
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.exportVolume("data")
	tp := c.startTunnel("client")
	old := c.waitCLILeader(20*time.Second, "")

	stop := make(chan struct{})
	loop := startCopyLoop(t, tp.Port, "data", "w", 1000, 64<<10, stop, nil)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		loop.wait(time.Minute)
	}()
	waitMore := func(what string, n int, timeout time.Duration) {
		t.Helper()
		before := loop.written()
		waitFor(t, timeout, fmt.Sprintf("%d files copied %s", n, what), func() (bool, string) {
			return loop.written()-before >= n, fmt.Sprintf("%d copied", loop.written()-before)
		})
	}
	waitMore("before the pause", 5, 30*time.Second)
	// A connection held open through the tunnel, as a mounted client's is:
	// its upstream is a connection to the leader that will not be closed,
	// only stop answering.
	held := dialHeld(t, tp.Port)
	if err := held.null(10 * time.Second); err != nil {
		t.Fatalf("NULL through the tunnel: %v", err)
	}

	pauseAndWait(t, old)
	pausedAt := time.Now()
	paused := true
	defer func() {
		if paused {
			old.Resume()
		}
	}()
	t.Logf("paused the leader %s (SIGSTOP, pid %d)", old.ID, old.PID())
	before := loop.written()
	// A call sent on the held connection now goes to the paused node: the
	// tunnel must notice and answer it from the new leader, while the old
	// one is still paused.
	if err := held.null(15 * time.Second); err != nil {
		t.Errorf("a call on a connection held through the tunnel was not answered while the old leader was paused: %v", err)
	} else {
		t.Logf("the held connection's call sent after the pause was answered %v after the pause", time.Since(pausedAt).Round(time.Millisecond))
	}
	leader := c.waitCLILeader(20*time.Second, old.ID)
	t.Logf("keel status shows %s leading %v after the pause (it waits up to 3 s for the paused node)", leader.ID, time.Since(pausedAt).Round(time.Millisecond))
	// Writes go on through the tunnel while the old leader is still paused.
	waitMore("while the old leader is paused", 10, 20*time.Second)
	if at := loop.files.firstAfter(pausedAt); !at.IsZero() {
		t.Logf("fail-over time (SIGSTOP → first nfs-cp completed after it): %v", at.Sub(pausedAt).Round(time.Millisecond))
	}
	// Paused for at least 3 s: several election timeouts (500 ms here).
	if d := 3*time.Second - time.Since(pausedAt); d > 0 {
		time.Sleep(d)
	}
	duringPause := loop.written() - before
	old.Resume()
	paused = false
	resumedAt := time.Now()
	t.Logf("continued %s (SIGCONT) after %v; %d files written while it was paused", old.ID, resumedAt.Sub(pausedAt).Round(time.Millisecond), duringPause)

	// The old leader must notice at once that it was deposed.
	waitFor(t, 5*time.Second, old.ID+" to report itself a follower", func() (bool, string) {
		st, err := old.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.Raft.State == "follower" && st.Active == nil, fmt.Sprintf("state %s, active %v", st.Raft.State, st.Active)
	})
	t.Logf("%s reports follower %v after SIGCONT", old.ID, time.Since(resumedAt).Round(time.Millisecond))
	if st, err := c.cliStatus(); err != nil || st.Leader == old.ID {
		t.Errorf("keel status shows leader %q after %s was continued (err %v)", st.Leader, old.ID, err)
	}

	// Its own NFS port does not take writes.
	direct := portOf(t, old.NFSAddr)
	stray := content("stray", 4096)
	if err := nfsPut(t, direct, "data", "/stray", stray); err == nil {
		t.Errorf("a write straight to the deposed leader %s's NFS port (%s) succeeded", old.ID, old.NFSAddr)
	} else {
		t.Logf("write straight to the deposed leader's NFS port failed, as it must: %v", err)
	}

	waitMore("after the old leader came back", 5, 20*time.Second)
	close(stop)
	for _, e := range loop.wait(time.Minute) {
		t.Errorf("client error: %s", e)
	}
	t.Logf("copied %d files through the tunnel; tunnel status %+v", loop.written(), tp.Status())
	waitConverged(t, c.DataMembers(), 30*time.Second)
	loop.files.checkOnNodes(t, "data", c.DataMembers())
	loop.files.checkThrough(t, tp.Port, "data")
	for _, m := range c.DataMembers() {
		if s, err := m.FileSum("data", "/stray"); err == nil {
			t.Errorf("/stray, written straight to the deposed leader, exists on %s (sha256 %s)", m.ID, s)
		}
	}
}
