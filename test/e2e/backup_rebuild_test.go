package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestRebuildNodeFromStateImage is the seed's design goal: a data node's
// disk is lost; a replacement with an empty data directory and seed_from
// in its config takes the newest state image from the backup store, then
// receives from the leader only what changed after it. The test records
// the bytes the rebuilt node received from the leader against the data
// the volume holds, and checks that the replicas end identical.
func TestRebuildNodeFromStateImage(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Steady: true})
	c.createVolume("data", 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const files, size = 20, 2 << 20 // 40 MiB before the image
	for i := range files {
		p := fmt.Sprintf("/before/f%02d", i)
		if err := c.Client.PutFile(ctx, "data", p, content("rebuild:"+p, size), true); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	store := filepath.Join(t.TempDir(), "backups")
	url := "file://" + store
	r := runKeel(t, 3*time.Minute, "backup", "push", "--state", "--to", url, "--json", "--dir", c.Dir)
	var img cluster.BackupPushResult
	if err := json.Unmarshal([]byte(r.Stdout), &img); r.Code != 0 || err != nil {
		t.Fatalf("keel backup push --state: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if img.Volume != "@state" || img.BytesUploaded < files*size/2 {
		t.Fatalf("state image: %+v", img)
	}
	t.Logf("state image %s at raft index %d: %d bytes uploaded in %.2fs", img.ID, img.RaftIndex, img.BytesUploaded, img.DurationSeconds)

	// The listing names it; a restore of it as a volume is refused.
	r = runKeel(t, time.Minute, "backup", "list", url, "--dir", c.Dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "@state") {
		t.Fatalf("keel backup list: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runKeel(t, time.Minute, "backup", "restore", url+"@"+img.ID, "--volume", "x", "--dir", c.Dir)
	if r.Code == 0 || !strings.Contains(r.Stderr, "state image") {
		t.Fatalf("restore of a state image as a volume: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// Lose a follower's disk, then write 1 MiB more.
	leader := c.WaitLeader(30*time.Second, "")
	var lost *Member
	for _, m := range c.DataMembers() {
		if m != leader {
			lost = m
		}
	}
	lost.Kill9()
	if err := os.RemoveAll(filepath.Join(lost.Dir, "data")); err != nil {
		t.Fatal(err)
	}
	after := content("rebuild:after", 1<<20)
	if err := c.Client.PutFile(ctx, "data", "/after", after, true); err != nil {
		t.Fatal(err)
	}

	// A wrong seed_from refuses to start and says why.
	editYAML(t, lost.Config, func(doc map[string]any) { section(doc, "node")["seed_from"] = "file://" + t.TempDir() })
	lost.start()
	waitFor(t, 20*time.Second, "the node with an empty seed store to exit", func() (bool, string) {
		return !lost.Running(), "still running"
	})
	if log := tailFile(lost.Log, 20); !strings.Contains(log, "holds no state image") {
		t.Fatalf("log of the refused seed:\n%s", log)
	}
	if err := os.RemoveAll(filepath.Join(lost.Dir, "data")); err != nil {
		t.Fatal(err)
	}

	editYAML(t, lost.Config, func(doc map[string]any) { section(doc, "node")["seed_from"] = url })
	lost.Start()
	var st cluster.NodeStatus
	waitFor(t, 60*time.Second, "the rebuilt node to catch up", func() (bool, string) {
		var err error
		if st, err = lost.Status(); err != nil {
			return false, err.Error()
		}
		h, err := lost.Hash()
		if err != nil {
			return false, err.Error()
		}
		lh, err := leader.Hash()
		if err != nil {
			return false, err.Error()
		}
		return h.Hash == lh.Hash && h.AppliedIndex == lh.AppliedIndex,
			fmt.Sprintf("rebuilt node at %d, leader at %d", h.AppliedIndex, lh.AppliedIndex)
	})
	if st.Seed == nil || st.Seed.BackupID != img.ID || st.Seed.RaftIndex != img.RaftIndex {
		t.Fatalf("status of the rebuilt node: seed %+v, want image %s", st.Seed, img.ID)
	}
	got, err := lost.FileSum("data", "/after")
	if err != nil || got != sum(after) {
		t.Fatalf("the change made after the image is not on the rebuilt node: %v", err)
	}
	volBytes := uint64(files*size + len(after))
	t.Logf("rebuilt node: %d bytes from the backup store, %d bytes received from the leader; the volume holds %d bytes",
		st.Seed.Bytes, st.Raft.ReceivedBytes, volBytes)
	if st.Raft.ReceivedBytes > volBytes/4 {
		t.Fatalf("the rebuilt node received %d bytes from the leader for a %d-byte volume: it was not seeded", st.Raft.ReceivedBytes, volBytes)
	}
	if st.Raft.ReceivedBytes < uint64(len(after)) {
		t.Fatalf("the rebuilt node received %d bytes, less than the %d written after the image", st.Raft.ReceivedBytes, len(after))
	}

	// keel status shows where it came from.
	r = runKeel(t, time.Minute, "status", "--dir", c.Dir)
	if !strings.Contains(r.Stdout, "seeded from "+img.ID) {
		t.Fatalf("keel status does not show the seed:\n%s", r.Stdout)
	}
	// A restart of the rebuilt node is an ordinary restart.
	lost.Restart()
	waitFor(t, 30*time.Second, "the restarted node to agree", func() (bool, string) {
		h, err1 := lost.Hash()
		lh, err2 := leader.Hash()
		return err1 == nil && err2 == nil && h.Hash == lh.Hash, fmt.Sprint(err1, err2)
	})
}
