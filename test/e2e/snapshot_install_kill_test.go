package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSnapshotInstallSurvivesKills makes a follower catch up by installing
// the leader's raft snapshot (about 160 MiB of file data, the leader's log
// compacted past the follower's last entry), and kills it with SIGKILL
// while the install runs: as soon as the stream starts, when about half of
// it has arrived, and while the state is being replaced (if that phase is
// seen; it can be shorter than a scrape). Then it kills the sending leader
// during an install. Each kill is checked to have landed mid-install, from
// the follower's keel_raft_snapshot_install_in_progress metric (and once
// from the snapshot_install of its status). Afterwards
// every data node holds the same state (digest), the follower serves every
// file byte-identical as leader, and its data directory holds no partial
// install (no *.tmp, pending-*, state.new or state.old).
func TestSnapshotInstallSurvivesKills(t *testing.T) {
	c := initCluster(t, Shape{Data: 3, Steady: true})
	for _, m := range c.Members {
		editYAML(t, m.Config, snapSmallRaftSnapshots)
	}
	c.StartAll()
	leader := c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	follower := c.otherData(leader)[0]
	fst, err := follower.Status()
	if err != nil {
		t.Fatalf("status of %s: %v", follower.ID, err)
	}
	follower.Stop()

	// ~160 MiB the follower does not have, until the leader's log starts
	// after the follower's last entry (raft-wal drops whole 64 MiB
	// segments only).
	files := map[string][]byte{}
	walDir := filepath.Join(leader.Dir, "data", "raft", "wal")
	i := 0
	waitFor(t, 90*time.Second, "the leader's log to be compacted past the follower's last entry", func() (bool, string) {
		first, segs := snapOldestSegment(t, walDir)
		st, err := leader.Status()
		if i >= 40 && err == nil && first > fst.Raft.LastIndex+1 && st.Raft.SnapshotIndex > fst.Raft.LastIndex+15 {
			return true, ""
		}
		if i >= 70 {
			return false, fmt.Sprintf("wrote %d files, stopped; leader's oldest segment starts at %d, follower's last index %d (%v)", i, first, fst.Raft.LastIndex, segs)
		}
		p := fmt.Sprintf("/big/f%03d", i)
		data := content("install kill"+p, 4<<20)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Client.PutFile(ctx, "data", p, data, true)
		cancel()
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		files[p] = data
		i++
		return false, fmt.Sprintf("%d files written; oldest segment %d", i, first)
	})
	snapBytes := metricOr(scrapeMember(c, leader), "keel_raft_snapshot_bytes", 0)
	t.Logf("wrote %d files (%d MiB); %s's newest raft snapshot holds %.0f MiB", i, 4*i, leader.ID, snapBytes/(1<<20))

	// killDuring starts m and kills it once pred holds of m's metrics
	// while an install is in progress; it reports whether it did.
	killDuring := func(m *Member, what string, within time.Duration, pred func(metrics string) bool) bool {
		t.Helper()
		m.start()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			s := scrapeMember(c, m)
			if s != "" && pred(s) {
				m.Kill9()
				t.Logf("killed %s %s: %.1f MiB of the stream received", m.ID, what, metricOr(s, "keel_raft_snapshot_install_received_bytes_total", 0)/(1<<20))
				return true
			}
			if s != "" && metricOr(s, `keel_raft_snapshot_installs_total{result="installed"}`, 0) > 0 && metricOr(s, `keel_raft_snapshot_install_in_progress{phase="restore"}`, 0) == 0 {
				break // the install finished before pred held
			}
			time.Sleep(5 * time.Millisecond)
		}
		m.Kill9()
		return false
	}
	receiving := func(s string) bool {
		return metricOr(s, `keel_raft_snapshot_install_in_progress{phase="receive"}`, 0) == 1
	}
	if !killDuring(follower, "as its install started", 60*time.Second, receiving) {
		t.Fatalf("%s never reported a snapshot install in progress (keel_raft_snapshot_install_in_progress{phase=\"receive\"}); it should have needed one", follower.ID)
	}
	if !killDuring(follower, "half-way through the stream", 60*time.Second, func(s string) bool {
		return receiving(s) && metricOr(s, "keel_raft_snapshot_install_received_bytes_total", 0) >= snapBytes/2
	}) {
		t.Errorf("%s: no kill half-way through the stream (the install ended first)", follower.ID)
	}
	// Kill the sender mid-install: the follower then installs from the
	// node elected next.
	follower.start()
	waitFor(t, 60*time.Second, follower.ID+" to show the install in keel status", func() (bool, string) {
		st, err := follower.Status()
		if err != nil {
			return false, err.Error()
		}
		in := st.Raft.SnapshotInstall
		if in == nil || in.Phase != "receive" || in.ReceivedBytes == 0 {
			return false, fmt.Sprintf("snapshot_install %+v", in)
		}
		t.Logf("%s's status: snapshot_install %+v", follower.ID, *in)
		return true, ""
	})
	leader.Kill9()
	t.Logf("killed the sender %s during %s's install", leader.ID, follower.ID)
	time.Sleep(2 * time.Second)
	leader.Start()
	// Once more if the follower still needs an install (the node elected
	// after the sender may have sent it all already).
	follower.Kill9()
	if killDuring(follower, "while its state was being replaced", 20*time.Second, func(s string) bool {
		return metricOr(s, `keel_raft_snapshot_install_in_progress{phase="restore"}`, 0) == 1
	}) {
		t.Logf("the restore phase was caught")
	} else {
		t.Logf("the restore phase was not caught by a scrape (it ran in under one, or no install was left to do); the follower was killed after it")
	}

	follower.Start()
	c.WaitLeader(60*time.Second, "")
	waitConverged(t, c.DataMembers(), 90*time.Second)
	for _, m := range c.DataMembers() {
		if left := partialInstall(t, m); len(left) > 0 {
			t.Errorf("%s's data directory holds what an interrupted install left: %v", m.ID, left)
		}
	}
	st, _ := follower.Status()
	t.Logf("%s converged: applied %d, raft snapshot index %d", follower.ID, st.Raft.AppliedIndex, st.Raft.SnapshotIndex)
	snapMoveLeader(t, c, follower, "data")
	for p, want := range files {
		got, err := follower.FileSum("data", p)
		if err != nil || got != sum(want) {
			t.Errorf("%s as leader: %s sums to %q (%v); want %s", follower.ID, p, got, err, sum(want))
		}
	}
}

// scrapeMember returns m's Prometheus metrics, or "" if it does not answer
// (it may be starting or just killed).
func scrapeMember(c *Cluster, m *Member) string {
	s, _ := fetchMetrics(c, m, 2*time.Second)
	return s
}

// fetchMetrics gets m's /metrics, giving up after timeout.
func fetchMetrics(c *Cluster, m *Member, timeout time.Duration) (string, error) {
	cl := c.httpClient()
	cl.Timeout = timeout
	resp, err := cl.Get("https://" + m.AdminAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricOr returns the value of the sample named name (with its labels, as
// exposed: `m{l="v"}`) in a Prometheus text exposition, or def.
func metricOr(exposition, name string, def float64) float64 {
	if v, ok := metricSample(exposition, name); ok {
		return v
	}
	return def
}

// metricSample finds the sample named name in a Prometheus text exposition.
func metricSample(exposition, name string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// partialInstall lists what an interrupted snapshot install or restore may
// leave in m's data directory.
func partialInstall(t *testing.T, m *Member) []string {
	t.Helper()
	var left []string
	data := filepath.Join(m.Dir, "data")
	ents, _ := os.ReadDir(filepath.Join(data, "raft", "snapshots"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), "pending-") {
			left = append(left, "raft/snapshots/"+e.Name())
		}
	}
	for _, d := range []string{"state.new", "state.old"} {
		if _, err := os.Stat(filepath.Join(data, d)); err == nil {
			left = append(left, d)
		}
	}
	return left
}
