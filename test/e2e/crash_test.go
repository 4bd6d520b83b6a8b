package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRestartAfterLogTruncation makes a node whose log holds an entry that
// was never committed (it was the leader, its followers dead, when it
// appended it), kills it, lets the others elect a leader and move on, and
// restarts it: raft then overwrites its uncommitted tail. The node must
// catch up, must not keep the uncommitted change, and must be able to
// restart again afterwards. (keel's kill -9 tests hit the same path at
// random: any crash can leave a node with such a tail.)
func TestRestartAfterLogTruncation(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Fast: true})
	c.createVolume("data", 1<<30)
	put := func(path string) string {
		t.Helper()
		data := content("data:"+path, 64<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Client.PutFile(ctx, "data", path, data, true); err != nil {
			t.Fatalf("put %s: %v", path, err)
		}
		return sum(data)
	}
	before := put("/before")

	old := c.WaitLeader(10*time.Second, "")
	var followers []*Member
	for _, m := range c.Members {
		if m != old {
			followers = append(followers, m)
		}
	}
	st, err := old.Status()
	if err != nil {
		t.Fatal(err)
	}
	last := st.Raft.LastIndex

	// Cut the leader off and have it append an entry it can never commit: a
	// volume create, sent to it alone. The followers are killed rather than
	// paused: a paused process's socket still receives what the leader sends.
	for _, f := range followers {
		f.Kill9()
	}
	hc := c.httpClient()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+old.AdminAddr+"/v1/volumes",
			strings.NewReader(`{"name":"ghost","size_bytes":1048576}`))
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, 2*time.Second, "the isolated leader to append the entry", func() (bool, string) {
		st, err := old.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.Raft.LastIndex > last, fmt.Sprintf("last_index %d (was %d), state %s", st.Raft.LastIndex, last, st.Raft.State)
	})
	old.Kill9()
	for _, f := range followers {
		f.Start()
	}
	leader := c.WaitLeader(15*time.Second, old.ID)
	t.Logf("%s appended an uncommitted entry and was killed; %s leads now", old.ID, leader.ID)
	after := put("/after")

	// First restart: raft replaces the uncommitted tail with the new
	// leader's entries.
	old.Start()
	waitConverged(t, c.DataMembers(), 30*time.Second)
	t.Logf("%s caught up; its log says clearing log suffix: %v", old.ID,
		strings.Contains(tailFile(old.Log, 200), "clearing log suffix"))
	checkNoGhost := func() {
		t.Helper()
		st, err := old.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range st.Volumes {
			if v.Name == "ghost" {
				t.Errorf("%s kept volume %q, created by an entry that was never committed", old.ID, v.Name)
			}
		}
	}
	checkNoGhost()

	// Second restart: the node must come up again with everything.
	old.Restart()
	waitConverged(t, c.DataMembers(), 30*time.Second)
	checkNoGhost()
	for path, want := range map[string]string{"/before": before, "/after": after} {
		if got, err := old.FileSum("data", path); err != nil || got != want {
			t.Errorf("%s after two restarts: %s has sha256 %q (err %v), want %s", old.ID, path, got, err, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vols, err := c.Client.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.Name == "ghost" {
			t.Errorf("the cluster lists volume %q, whose create was never acknowledged", v.Name)
		}
	}
}
