package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestPreferFailback runs three data nodes with `prefer: n1` (Heartbeat's
// auto_failback): n1 becomes and stays the leader, and gets the role back
// after `keel failover --to n2`; after kill -9 of n1
// another node leads; once n1 is back and caught up it is the leader again
// within about 15 s. A client copies files through a tunnel all along, and
// none of its nfs-cp may fail.
func TestPreferFailback(t *testing.T) {
	requireLibnfs(t)
	c := initCluster(t, Shape{Data: 3, Fast: true})
	for _, m := range c.Members {
		editYAML(t, m.Config, func(doc map[string]any) { doc["prefer"] = "n1" })
	}
	c.StartAll()
	n1 := c.Member("n1")
	first := c.waitCLILeader(30*time.Second, "")
	t.Logf("first leader: %s", first.ID)
	waitFor(t, 20*time.Second, "the preferred node n1 to lead", func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		return st.Leader == n1.ID, fmt.Sprintf("leader %q", st.Leader)
	})
	c.exportVolume("data")
	tp := c.startTunnel("client")

	stop := make(chan struct{})
	loop := startCopyLoop(t, tp.Port, "data", "p", 1000, 128<<10, stop, nil)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		loop.wait(time.Minute)
	}()
	waitMore := func(what string, n int) {
		t.Helper()
		before := loop.written()
		waitFor(t, 30*time.Second, fmt.Sprintf("%d files copied %s", n, what), func() (bool, string) {
			return loop.written()-before >= n, fmt.Sprintf("%d copied", loop.written()-before)
		})
	}
	waitMore("with n1 leading", 5)
	// n1 stays the leader while it is up.
	for i := 0; i < 5; i++ {
		if st, err := c.cliStatus(); err != nil || st.Leader != n1.ID {
			t.Fatalf("n1 (preferred, up) does not stay the leader: status leader %q (err %v)", st.Leader, err)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Handed away by hand, the active role comes back to n1 too.
	if r := c.keel(30*time.Second, "failover", "--to", "n2"); r.Code != 0 {
		t.Fatalf("keel failover --to n2: exit %d: %s", r.Code, r.Stderr)
	}
	handed := time.Now()
	waitFor(t, 15*time.Second, "n1 to lead again after keel failover --to n2", func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		return st.Leader == n1.ID, fmt.Sprintf("leader %q", st.Leader)
	})
	t.Logf("after keel failover --to n2, n1 leads again %v later", time.Since(handed).Round(time.Millisecond))
	waitMore("after the hand-over and fail-back", 3)

	killedAt := time.Now()
	n1.Kill9()
	other := c.waitCLILeader(20*time.Second, n1.ID)
	t.Logf("killed n1 (kill -9); %s leads %v later", other.ID, time.Since(killedAt).Round(time.Millisecond))
	waitMore("with n1 down", 5)

	n1.Start()
	restarted := time.Now()
	waitFor(t, 15*time.Second, "n1 to lead again (fail-back)", func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		return st.Leader == n1.ID, fmt.Sprintf("leader %q", st.Leader)
	})
	t.Logf("fail-back: n1 leads again %v after its restart", time.Since(restarted).Round(time.Millisecond))
	if st, err := n1.Status(); err == nil && st.Active != nil {
		t.Logf("n1 active: %+v", *st.Active)
	}
	waitMore("after the fail-back", 5)

	close(stop)
	for _, e := range loop.wait(time.Minute) {
		t.Errorf("client error: %s", e)
	}
	t.Logf("copied %d files through the tunnel; tunnel status %+v", loop.written(), tp.Status())
	loop.files.checkThrough(t, tp.Port, "data")
	waitConverged(t, c.DataMembers(), 30*time.Second)
	loop.files.checkOnNodes(t, "data", c.DataMembers())
}
