package e2e

import (
	"sync"
	"testing"
	"time"
)

// TestWritesDuringKillHaveNoClientError copies 40 distinct 1 MiB files
// through one tunnel, one nfs-cp each, and kills the leader (kill -9) while
// the eleventh is being copied. Every nfs-cp must exit 0 on its one try, and
// every file must read back byte-identical through the tunnel and be the
// same on every surviving data node.
func TestWritesDuringKillHaveNoClientError(t *testing.T) {
	requireLibnfs(t)
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.exportVolume("data")
	tp := c.startTunnel("client")
	old := c.waitCLILeader(20*time.Second, "")

	kill := make(chan struct{})
	var once sync.Once
	loop := startCopyLoop(t, tp.Port, "data", "big", 40, 1<<20, nil, func(i int) {
		if i >= 9 {
			once.Do(func() { close(kill) }) // kill while the next copy runs: the loop goes on at once
		}
	})
	select {
	case <-kill:
	case <-time.After(2 * time.Minute):
		t.Fatalf("10 files were not copied within 2 minutes; errors: %v", loop.wait(time.Minute))
	}
	time.Sleep(15 * time.Millisecond)
	killedAt := time.Now()
	old.Kill9()
	t.Logf("killed leader %s (kill -9) after %d files", old.ID, loop.written())

	errs := loop.wait(3 * time.Minute)
	if at := loop.files.firstAfter(killedAt); !at.IsZero() {
		t.Logf("fail-over time (kill → first nfs-cp to complete after it): %v", at.Sub(killedAt).Round(time.Millisecond))
	}
	for _, e := range errs {
		t.Errorf("client error: %s", e)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of 40 nfs-cp failed through the tunnel; want none", len(errs))
	}
	leader := c.waitCLILeader(20*time.Second, old.ID)
	t.Logf("%s leads now; tunnel status %+v", leader.ID, tp.Status())

	loop.files.checkThrough(t, tp.Port, "data")
	waitConverged(t, c.otherData(old), 30*time.Second)
	loop.files.checkOnNodes(t, "data", c.otherData(old))
}
