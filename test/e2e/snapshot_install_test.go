package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapSmallRaftSnapshots makes raft snapshot and compact often: a snapshot
// once 20 entries were applied since the last, checked every second, and
// only 10 entries kept behind it.
func snapSmallRaftSnapshots(doc map[string]any) {
	r := section(doc, "raft")
	r["snapshot_threshold"] = 20
	r["trailing_logs"] = 10
	r["snapshot_interval"] = "1s"
}

// TestSnapshotReachesFollowerBySnapshotInstall runs a cluster whose nodes
// take raft snapshots every 20 entries and keep only 10 entries behind
// them. A follower is stopped; snapshot data@s1 is taken and the volume
// written to until the leader's log is compacted past both the follower's
// last entry and the entry that made s1. Restarted, the follower can only
// catch up by installing the leader's raft snapshot, which carries the
// volume snapshots (volsnaps/): made leader, it serves /data@s1 with
// exactly the content it had, and /data as written.
func TestSnapshotReachesFollowerBySnapshotInstall(t *testing.T) {
	requireLibnfsUtils(t)
	c := initCluster(t, Shape{Data: 3, Steady: true})
	for _, m := range c.Members {
		editYAML(t, m.Config, snapSmallRaftSnapshots)
	}
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	leader := iopLeader(t, c)
	old := snapSeed(t, leader.NFSAddr, "data", "install-v1")

	follower := c.otherData(leader)[0]
	fst, err := follower.Status()
	if err != nil {
		t.Fatalf("status of %s: %v", follower.ID, err)
	}
	follower.Stop()
	t.Logf("stopped follower %s at last index %d (its raft snapshot index %d); %s leads", follower.ID, fst.Raft.LastIndex, fst.Raft.SnapshotIndex, leader.ID)

	snapCreate(t, c, "data", "s1")
	s1 := snapGet(t, c, "data", "s1")
	now := snapChange(t, leader.NFSAddr, "data", old, "install-v2")

	// Write until the leader has compacted its log past the follower's
	// last entry and s1's. Raft keeps trailing_logs (10) entries behind a
	// snapshot, so its snapshot index must pass both by more than that; and
	// raft-wal drops entries only with whole segments (64 MiB): until the
	// segment holding them is sealed and deleted they stay readable, and
	// the leader sends them rather than a snapshot. So write more than
	// 64 MiB, until the leader's oldest segment starts after s1's entry.
	target := max(s1.Index, fst.Raft.LastIndex) + 10 + 5
	walDir := filepath.Join(leader.Dir, "data", "raft", "wal")
	now["/fill/"] = nil
	i := 0
	var lst uint64
	waitFor(t, 50*time.Second, fmt.Sprintf("the leader's raft snapshot index to pass %d and its log to start after %d", target, s1.Index+1), func() (bool, string) {
		st, err := leader.Status()
		first, segs := snapOldestSegment(t, walDir)
		if err == nil && st.Raft.SnapshotIndex > target && first > s1.Index+1 {
			lst = st.Raft.SnapshotIndex
			return true, ""
		}
		if i >= 40 {
			return false, fmt.Sprintf("wrote %d files (%d MiB), stopped writing; leader raft snapshot index %d (err %v), wal segments %v", i, 4*i, st.Raft.SnapshotIndex, err, segs)
		}
		p := fmt.Sprintf("/fill/f%03d", i)
		data := content("install fill"+p, 4<<20)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Client.PutFile(ctx, "data", p, data, true)
		cancel()
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		now[p] = data
		i++
		return false, fmt.Sprintf("leader raft snapshot index %d, applied %d, wal segments %v; %d files written", st.Raft.SnapshotIndex, st.Raft.AppliedIndex, segs, i)
	})
	t.Logf("wrote %d files (%d MiB) after s1 (raft index %d); the leader's raft snapshot index is %d, its log starts at %d",
		i, 4*i, s1.Index, lst, func() uint64 { f, _ := snapOldestSegment(t, walDir); return f }())

	follower.Start()
	restarted := time.Now()
	waitConverged(t, c.DataMembers(), 40*time.Second)
	st, err := follower.Status()
	if err != nil {
		t.Fatalf("status of %s: %v", follower.ID, err)
	}
	t.Logf("%s caught up %v after its restart: applied %d, raft snapshot index %d, received %d bytes over raft",
		follower.ID, time.Since(restarted).Round(time.Millisecond), st.Raft.AppliedIndex, st.Raft.SnapshotIndex, st.Raft.ReceivedBytes)
	if st.Raft.SnapshotIndex < lst || st.Raft.ReceivedBytes < 64<<20 {
		t.Errorf("%s: raft snapshot index %d, %d bytes received; want at least the leader's %d (installed from it), and the state's > 64 MiB received",
			follower.ID, st.Raft.SnapshotIndex, st.Raft.ReceivedBytes, lst)
	}
	log, err := os.ReadFile(follower.Log)
	// The log of its current run: after the framework's last start line.
	run := string(log)
	if k := strings.LastIndex(run, "=== e2e "); k >= 0 {
		run = run[k:]
	}
	if err != nil || !strings.Contains(run, "Installed remote snapshot") {
		t.Errorf("%s's log since its restart does not say it installed a remote snapshot (%v)", follower.ID, err)
	}
	// The volume snapshot's directory came with it.
	found := snapDirs(t, follower, "s1")
	t.Logf("%s holds volume snapshot directories %v", follower.ID, found)
	if len(found) != 1 {
		t.Errorf("%s has volume snapshot directories %v after installing the leader's raft snapshot; want one volsnaps/<vol>/s1", follower.ID, found)
	}

	snapMoveLeader(t, c, follower, "data@s1")
	snapCheckTree(t, follower.NFSAddr, "data@s1", old, "on "+follower.ID+" after the snapshot install")
	snapCheckTree(t, follower.NFSAddr, "data", now, "on "+follower.ID+" after the snapshot install")
	if got := snapGet(t, c, "data", "s1"); got.Index != s1.Index || got.VolumeUsedBytes != s1.VolumeUsedBytes || got.Missing {
		t.Errorf("with %s leading, keel snapshot list shows %+v; want %+v", follower.ID, got, s1)
	}
	// And the snapshot can be cloned on that node.
	snapKeel(t, c, "volume", "clone", "data@s1", "fromfollower")
	snapKeel(t, c, "volume", "export", "fromfollower", "--no-root-squash", "--clients", "127.0.0.0/8")
	snapCheckTree(t, follower.NFSAddr, "fromfollower", old, "clone of s1 made on "+follower.ID)
	waitConverged(t, c.DataMembers(), 30*time.Second)
}

// snapOldestSegment returns the base index of the oldest raft-wal segment
// in dir (files named BASEINDEX-ID.wal), and the segments' names.
func snapOldestSegment(t *testing.T, dir string) (uint64, []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("raft log directory: %v", err)
	}
	var first uint64
	var names []string
	for _, e := range ents {
		var base, id uint64
		if n, _ := fmt.Sscanf(e.Name(), "%020d-%016x.wal", &base, &id); n != 2 {
			continue
		}
		names = append(names, e.Name())
		if first == 0 || base < first {
			first = base
		}
	}
	return first, names
}
