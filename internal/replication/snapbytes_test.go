package replication

import (
	"testing"
	"time"

	"keel/internal/fsstate"
)

// Every data node snapshots on its own once the bytes applied since its last
// snapshot pass SnapshotBytes, with raft's entry-count threshold far away;
// below it, none does.
func TestSnapshotByLogBytes(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.tweaks = func(cfg *Config) {
		cfg.SnapshotThreshold, cfg.SnapshotInterval = 1<<40, time.Hour
		cfg.SnapshotBytes = 4 << 20
	}
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	ino := createFile(t, c, vol, "f")
	chunk := make([]byte, 256<<10)
	write := func(from, n int) {
		for i := from; i < from+n; i++ {
			if r := c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Offset: uint64(i * len(chunk)), Data: chunk}); r.Err != 0 {
				t.Fatal(r.Err)
			}
		}
	}
	lastSnap := func(n *Node) uint64 {
		list, err := n.snaps.List()
		if err != nil || len(list) == 0 {
			return 0
		}
		return list[0].Index
	}
	write(0, 8) // 2 MiB: under the threshold
	time.Sleep(3 * snapBytesTick)
	for id, n := range c.nodes {
		if i := lastSnap(n); i != 0 {
			t.Fatalf("%s snapshotted at %d after 2 MiB (threshold 4 MiB)", id, i)
		}
	}
	write(8, 12) // 5 MiB in all
	deadline := time.Now().Add(10 * time.Second)
	for id, n := range c.nodes {
		for lastSnap(n) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s took no snapshot after 5 MiB of writes (threshold 4 MiB)", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := n.data.sinceSnapshot.Load(); got >= 4<<20 {
			t.Errorf("%s: %d bytes counted since its snapshot", id, got)
		}
	}
}
