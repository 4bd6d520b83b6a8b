package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestResourceHooks configures a resource on every node (Heartbeat's
// resource scripts): start writes $KEEL_NODE_ID into a marker file of the
// node's own, stop removes it, monitor checks it every 200 ms, and two
// monitor failures in a row hand the active role away. Only the active node
// has its marker; a graceful `keel failover` runs stop on the old leader and
// start on the new one; status shows the resource running on the active
// node; deleting the active node's marker moves the active role.
func TestResourceHooks(t *testing.T) {
	requireBinary(t)
	c := initCluster(t, Shape{Data: 3, Fast: true})
	dir := t.TempDir()
	marker := func(id string) string { return filepath.Join(dir, id+".marker") }
	for _, m := range c.DataMembers() {
		f := marker(m.ID)
		editYAML(t, m.Config, func(doc map[string]any) {
			doc["resources"] = []any{map[string]any{
				"name":           "marker",
				"start":          fmt.Sprintf(`echo "$KEEL_NODE_ID" > '%s'`, f),
				"stop":           fmt.Sprintf(`rm -f '%s'`, f),
				"monitor":        fmt.Sprintf(`test -f '%s'`, f),
				"interval":       "200ms",
				"timeout":        "5s",
				"failover_after": 2,
			}}
		})
	}
	c.StartAll()

	// markers returns the ids whose marker exists, and checks what start
	// wrote into each.
	markers := func() []string {
		var ids []string
		for _, m := range c.DataMembers() {
			b, err := os.ReadFile(marker(m.ID))
			if err != nil {
				continue
			}
			if got := strings.TrimSpace(string(b)); got != m.ID {
				t.Errorf("%s's marker holds %q, want %q ($KEEL_NODE_ID)", m.ID, got, m.ID)
			}
			ids = append(ids, m.ID)
		}
		return ids
	}
	// onlyLeaderMarked waits until the leader (keel status) is the one node
	// with a marker and status shows its resource running.
	onlyLeaderMarked := func(what string, not string) *Member {
		t.Helper()
		var leader *Member
		waitFor(t, 10*time.Second, what, func() (bool, string) {
			st, err := c.cliStatus()
			if err != nil {
				return false, err.Error()
			}
			if st.Leader == "" || st.Leader == not {
				return false, fmt.Sprintf("leader %q", st.Leader)
			}
			leader = c.Member(st.Leader)
			have := markers()
			if len(have) != 1 || have[0] != leader.ID {
				return false, fmt.Sprintf("leader %s, markers of %v", leader.ID, have)
			}
			for _, m := range st.Nodes {
				if m.ID != leader.ID || m.Node == nil {
					continue
				}
				if m.Node.Active == nil {
					return false, "status shows no active info on the leader " + leader.ID
				}
				for _, r := range m.Node.Resources {
					if r.Name == "marker" && r.State == "running" {
						return true, ""
					}
				}
				return false, fmt.Sprintf("resources on %s: %+v", leader.ID, m.Node.Resources)
			}
			return false, "leader " + leader.ID + " not in status"
		})
		return leader
	}

	first := onlyLeaderMarked("only the leader to have its marker, resource running", "")
	t.Logf("%s leads and alone has its marker: %v", first.ID, markers())
	// The monitors keep it so for a while.
	for i := 0; i < 5; i++ {
		time.Sleep(200 * time.Millisecond)
		if have := markers(); len(have) != 1 || have[0] != first.ID {
			t.Fatalf("markers of %v while %s leads; want only %s's", have, first.ID, first.ID)
		}
	}

	// Graceful hand-over: stop runs on the old leader, start on the new.
	to := c.otherData(first)[0]
	if r := c.keel(30*time.Second, "failover", "--to", to.ID); r.Code != 0 {
		t.Fatalf("keel failover --to %s: exit %d: %s", to.ID, r.Code, r.Stderr)
	}
	second := onlyLeaderMarked("stop on "+first.ID+", start on "+to.ID, first.ID)
	if second != to {
		t.Fatalf("after keel failover --to %s, %s leads", to.ID, second.ID)
	}
	if _, err := os.Stat(marker(first.ID)); err == nil {
		t.Errorf("%s's marker is still there after it handed the active role away (stop did not run)", first.ID)
	}
	r := c.keel(20*time.Second, "status")
	if !strings.Contains(r.Stdout, "active   "+to.ID) || !strings.Contains(r.Stdout, "resource marker: running") {
		t.Errorf("keel status does not show %s active with resource marker running:\n%s", to.ID, r.Stdout)
	}
	t.Logf("after keel failover --to %s: markers %v", to.ID, markers())

	// A failing monitor (the marker deleted behind keel's back) hands the
	// role away after failover_after (2) failures.
	if err := os.Remove(marker(second.ID)); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	third := onlyLeaderMarked("the active role to leave "+second.ID+" after its monitor failed", second.ID)
	t.Logf("%s's monitor failed; %s is active %v later, markers %v", second.ID, third.ID, time.Since(removed).Round(time.Millisecond), markers())
	if d := time.Since(removed); d > 10*time.Second {
		t.Errorf("the active role moved %v after the monitor started failing; want within 10s", d)
	}
	if st, err := second.Status(); err == nil {
		for _, r := range st.Resources {
			t.Logf("%s's resource %s: %s (%s) %s", second.ID, r.Name, r.State, r.LastEvent, r.LastError)
		}
	}
}
