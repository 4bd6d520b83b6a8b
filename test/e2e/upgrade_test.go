package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRollingRestart is the rolling upgrade's procedure: each node in turn
// is stopped and started again (as a binary replacement would), followers
// first and the active node last; after each one the cluster takes writes,
// and at the end every node holds every file.
func TestRollingRestart(t *testing.T) {
	c := startCluster(t, Shape{Data: 2, Witness: true, Fast: true})
	c.createVolume("data", 1<<30)
	tmp := t.TempDir()
	leader := c.WaitLeader(30*time.Second, "")
	order := []string{}
	for _, m := range c.Members {
		if m.ID != leader.ID {
			order = append(order, m.ID)
		}
	}
	order = append(order, leader.ID)
	for i, id := range order {
		m := c.Member(id)
		m.Restart()
		waitVoters(t, c, 30*time.Second, "n1", "n2", "w1")
		f := filepath.Join(tmp, fmt.Sprint(i))
		data := content("rolling-"+id, 64<<10)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "a write after restarting "+id, func() (bool, string) {
			r := c.keel(20*time.Second, "fs", "put", f, fmt.Sprintf("data:/after-%s.bin", id))
			return r.Code == 0, r.Stderr
		})
	}
	for _, id := range order {
		want := sum(content("rolling-"+id, 64<<10))
		for _, m := range c.DataMembers() {
			waitFor(t, 20*time.Second, "after-"+id+" on "+m.ID, func() (bool, string) {
				got, err := m.FileSum("data", "/after-"+id+".bin")
				return err == nil && got == want, fmt.Sprint(got, err)
			})
		}
	}
}
