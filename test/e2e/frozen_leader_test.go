package e2e

import (
	"strings"
	"testing"
	"time"

	"keel/test/chaos"
)

// TestFrozenLeaderLeavesActiveRole is the regression test of the first
// anomaly the chaos runs found: a leader stopped with SIGSTOP beyond the
// election timeout and then continued still called itself active for up
// to ~50 ms after its thaw, while the node elected meanwhile was active
// too. A node now notices the freeze on its first tick, leaves the active
// role and logs since when it was not active; the serving intervals of the
// nodes, from their logs and the pause, must not overlap.
func TestFrozenLeaderLeavesActiveRole(t *testing.T) {
	c := initCluster(t, Shape{Data: 3, Fast: true})
	for _, m := range c.Members {
		editYAML(t, m.Config, func(doc map[string]any) { section(doc, "log")["format"] = "json" })
	}
	c.StartAll()
	old := c.WaitLeader(30*time.Second, "")
	waitFor(t, 10*time.Second, old.ID+" to log that it is active", func() (bool, string) {
		return strings.Contains(tailFile(old.Log, 200), chaos.MsgActive), "not yet"
	})

	var evs []chaos.Event
	evs = append(evs, chaos.Event{Node: old.ID, At: time.Now(), Kind: chaos.Paused})
	old.Pause()
	next := c.WaitLeader(30*time.Second, old.ID)
	waitFor(t, 10*time.Second, next.ID+" to log that it is active", func() (bool, string) {
		return strings.Contains(tailFile(next.Log, 200), chaos.MsgActive), "not yet"
	})
	old.Resume()
	evs = append(evs, chaos.Event{Node: old.ID, At: time.Now(), Kind: chaos.Resumed})
	waitFor(t, 10*time.Second, old.ID+" to log that it was frozen", func() (bool, string) {
		return strings.Contains(tailFile(old.Log, 200), "it was frozen longer than the leader lease"), tailFile(old.Log, 3)
	})
	for _, m := range c.Members {
		e, err := chaos.ActiveEvents(m.ID, m.Log)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	ivs := chaos.ServingIntervals(evs, time.Now())
	if bad := chaos.Overlaps(ivs); len(bad) > 0 {
		t.Fatalf("two nodes active at once after %s was frozen and thawed:\n  %s", old.ID, strings.Join(bad, "\n  "))
	}
	t.Logf("serving intervals: %v", ivs)
}
