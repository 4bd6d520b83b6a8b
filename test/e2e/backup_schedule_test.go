package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestScheduledBackups configures a volume backup every 2 s (keep the
// last 2) and a state image every 2 s (keep 1) on every node: the active
// node makes them, skips runs when nothing changed, prunes by the
// retention, reports the results in status and metrics, and after a
// fail-over the new active node goes on from the store's latest backup
// instead of starting over.
func TestScheduledBackups(t *testing.T) {
	c := initCluster(t, Shape{Data: 2, Witness: true, Steady: true})
	url := "file://" + t.TempDir() + "/backups"
	for _, m := range c.Members {
		editYAML(t, m.Config, func(doc map[string]any) {
			doc["backups"] = []any{
				map[string]any{"volume": "data", "to": url, "interval": "2s", "keep_last": 2},
				map[string]any{"state": true, "to": url, "interval": "2s", "keep_last": 1},
			}
		})
	}
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.createVolume("data", 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	put := func(p string) {
		t.Helper()
		if err := c.Client.PutFile(ctx, "data", p, content("sched:"+p, 300<<10), true); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (vol, state int) {
		list, err := c.Client.Backups(ctx, url)
		if err != nil {
			return -1, -1
		}
		for _, b := range list {
			if b.Volume == "data" {
				vol++
			} else if b.Volume == "@state" {
				state++
			}
		}
		return vol, state
	}
	schedule := func(m *Member, name string) cluster.ScheduleStatus {
		st, err := m.Status()
		if err != nil {
			return cluster.ScheduleStatus{}
		}
		for _, b := range st.Backups {
			if b.Name == name {
				return b
			}
		}
		return cluster.ScheduleStatus{}
	}
	put("/a")
	leader := c.WaitLeader(30*time.Second, "")
	waitFor(t, 30*time.Second, "a scheduled backup of data and a state image", func() (bool, string) {
		v, s := count()
		return v >= 1 && s == 1, fmt.Sprintf("%d volume backups, %d state images; data: %+v", v, s, schedule(leader, "data"))
	})
	// Every data node keeps its raft log from the newest state image on, for
	// a node that would be rebuilt from it.
	for _, m := range c.DataMembers() {
		waitFor(t, 20*time.Second, m.ID+" to keep its log from the newest state image", func() (bool, string) {
			return strings.Contains(tailFile(m.Log, 400), "keeping the raft log from the newest state image"), "not in its log"
		})
	}
	// Nothing changes: the runs are skipped, no backup is added.
	first, _ := count()
	waitFor(t, 20*time.Second, "a skipped run", func() (bool, string) {
		b := schedule(leader, "data")
		return strings.HasPrefix(b.LastResult, "skipped"), b.LastResult
	})
	if v, _ := count(); v != first {
		t.Fatalf("runs with nothing changed made backups: %d, then %d", first, v)
	}
	// Two changes, two more backups; the retention keeps the last two.
	for _, p := range []string{"/b", "/c"} {
		before := schedule(leader, "data").LastBackup
		put(p)
		waitFor(t, 20*time.Second, "a backup of the change to "+p, func() (bool, string) {
			b := schedule(leader, "data")
			return b.LastBackup != before && b.LastResult == "ok", fmt.Sprintf("%+v", b)
		})
	}
	waitFor(t, 20*time.Second, "retention", func() (bool, string) {
		v, s := count()
		return v == 2 && s == 1, fmt.Sprintf("%d volume backups, %d state images", v, s)
	})
	last := schedule(leader, "data")
	r := runKeel(t, time.Minute, "status", "--dir", c.Dir)
	if !strings.Contains(r.Stdout, "backup   data → "+url) || !strings.Contains(r.Stdout, last.LastBackup) {
		t.Fatalf("keel status does not show the schedule:\n%s", r.Stdout)
	}
	metrics := scrape(t, c, leader)
	for _, want := range []string{`keel_backup_runs_total{result="ok",schedule="data"}`, `keel_backup_runs_total{result="skipped",schedule="data"}`,
		`keel_backup_last_success_timestamp_seconds{schedule="@state"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Fail-over: the new active node reads the latest backup from the store
	// and, with nothing changed, makes none.
	leader.Kill9()
	next := c.WaitLeader(30*time.Second, leader.ID)
	waitFor(t, 20*time.Second, "the new active node to take the schedule over", func() (bool, string) {
		b := schedule(next, "data")
		return b.LastBackup == last.LastBackup && strings.HasPrefix(b.LastResult, "skipped"), fmt.Sprintf("%+v", b)
	})
	if v, _ := count(); v != 2 {
		t.Fatalf("after the fail-over with nothing changed: %d volume backups", v)
	}
	put("/d")
	waitFor(t, 20*time.Second, "a backup by the new active node", func() (bool, string) {
		b := schedule(next, "data")
		return b.LastBackup != last.LastBackup && b.LastResult == "ok", fmt.Sprintf("%+v", b)
	})
}

// scrape returns a node's Prometheus metrics; the test fails if it does
// not answer within 15 s (a node under a hostile load can be slow to).
func scrape(t *testing.T, c *Cluster, m *Member) string {
	t.Helper()
	s, err := fetchMetrics(c, m, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
