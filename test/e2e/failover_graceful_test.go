package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGracefulFailover hands the active role over with `keel failover --to
// NODE`, four times, while two clients copy files through a tunnel: no
// nfs-cp may fail, the named node becomes the leader, and `keel status`
// shows it active.
func TestGracefulFailover(t *testing.T) {
	requireLibnfs(t)
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.exportVolume("data")
	tp := c.startTunnel("client")
	leader := c.waitCLILeader(20*time.Second, "")

	stop := make(chan struct{})
	loops := []*copyLoop{
		startCopyLoop(t, tp.Port, "data", "a", 1000, 256<<10, stop, nil),
		startCopyLoop(t, tp.Port, "data", "b", 1000, 64<<10, stop, nil),
	}
	written := func() int { return loops[0].written() + loops[1].written() }
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	waitFor(t, 30*time.Second, "5 files copied before the hand-over", func() (bool, string) {
		n := written()
		return n >= 5, fmt.Sprintf("copied %d", n)
	})

	for round := 0; round < 4; round++ {
		to := c.otherData(leader)[round%2]
		before := written()
		start := time.Now()
		r := c.keel(30*time.Second, "failover", "--to", to.ID)
		if r.Code != 0 {
			t.Fatalf("keel failover --to %s: exit %d: %s%s", to.ID, r.Code, r.Stdout, r.Stderr)
		}
		took := time.Since(start)
		if got := c.waitCLILeader(15*time.Second, leader.ID); got != to {
			t.Fatalf("after keel failover --to %s, keel status shows %s leading", to.ID, got.ID)
		}
		t.Logf("keel failover --to %s (from %s) returned after %v", to.ID, leader.ID, took.Round(time.Millisecond))
		waitFor(t, 20*time.Second, "keel status (text) to show "+to.ID+" active", func() (bool, string) {
			r := c.keel(20*time.Second, "status")
			for _, line := range strings.Split(r.Stdout, "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "active" && f[1] == to.ID {
					return true, ""
				}
			}
			return false, r.Stdout
		})
		waitFor(t, 30*time.Second, "5 more files copied after the hand-over", func() (bool, string) {
			n := written() - before
			return n >= 5, fmt.Sprintf("copied %d", n)
		})
		leader = to
	}
	close(stop)
	for _, l := range loops {
		for _, e := range l.wait(time.Minute) {
			t.Errorf("client error: %s", e)
		}
	}
	t.Logf("copied %d files through the tunnel across four hand-overs; tunnel status %+v", written(), tp.Status())
	waitConverged(t, c.DataMembers(), 30*time.Second)
	for _, l := range loops {
		l.files.checkThrough(t, tp.Port, "data")
		l.files.checkOnNodes(t, "data", c.DataMembers())
	}
}
