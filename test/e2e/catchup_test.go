package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFollowerCatchUp stops a follower, writes 50 MiB through the leader,
// restarts the follower and checks that it catches up with every file and
// that what it received over raft is about the 50 MiB it missed, not a copy
// of the (10 GiB) volume. It runs with the default raft timings.
func TestFollowerCatchUp(t *testing.T) {
	const (
		files    = 50
		fileSize = 1 << 20
		missed   = files * fileSize
		volSize  = 10 << 30
	)
	c := startCluster(t, Shape{Data: 3})
	if r := runKeel(t, 30*time.Second, "volume", "create", "big", "--size", "10GiB", "--dir", c.Dir); r.Code != 0 {
		t.Fatalf("keel volume create big --size 10GiB: exit %d: %s", r.Code, r.Stderr)
	}
	leader := c.WaitLeader(10*time.Second, "")
	var follower *Member
	for _, m := range c.DataMembers() {
		if m != leader {
			follower = m
			break
		}
	}
	follower.Stop()
	t.Logf("stopped follower %s (SIGTERM); leader is %s", follower.ID, leader.ID)

	want := map[string]string{}
	start := time.Now()
	for i := 0; i < files; i++ {
		path := fmt.Sprintf("/catchup/f%02d", i)
		data := content("big:"+path, fileSize)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := c.Client.PutFile(ctx, "big", path, data, true)
		cancel()
		if err != nil {
			t.Fatalf("put %s with %s down: %v", path, follower.ID, err)
		}
		want[path] = sum(data)
	}
	t.Logf("wrote %d MiB in %d files with %s down in %v", missed>>20, files, follower.ID, time.Since(start).Round(time.Millisecond))

	follower.Start()
	restarted := time.Now()
	waitFor(t, 90*time.Second, follower.ID+" to hold every file written while it was down", func() (bool, string) {
		have := 0
		for path, s := range want {
			got, err := follower.FileSum("big", path)
			if err != nil || got != s {
				return false, fmt.Sprintf("%d of %d files; %s: sha256 %q err %v", have, files, path, got, err)
			}
			have++
		}
		return true, ""
	})
	waitConverged(t, c.DataMembers(), 30*time.Second)
	t.Logf("%s caught up %v after its restart", follower.ID, time.Since(restarted).Round(time.Millisecond))

	st, err := follower.Status()
	if err != nil {
		t.Fatalf("status of %s: %v", follower.ID, err)
	}
	got := st.Raft.ReceivedBytes
	t.Logf("%s received %d bytes (%.2f MiB) over raft to catch up on %d MiB of writes (volume size %d GiB)",
		follower.ID, got, float64(got)/(1<<20), missed>>20, volSize>>30)
	if got < missed || got > missed*3/2 {
		t.Errorf("raft_received_bytes = %d (%.2f MiB); want between %d MiB and %d MiB: about what was written while the node was down",
			got, float64(got)/(1<<20), missed>>20, missed*3/2>>20)
	}
	if got > volSize/100 {
		t.Errorf("raft_received_bytes = %d: more than 1%% of the volume size; catch-up must not copy the volume", got)
	}
}
