package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestSeedWalkthrough is the seed's verification of fail-over, step by
// step: two data nodes and a witness, two client machines (two `keel
// tunnel` processes, each with its own NFS and status port). Every
// node.yaml says `prefer: n1` (Heartbeat's auto_failback on), so n1 is the
// active node, as the seed's primary is, and gets the role back.
//
//  1. Through tunnel 1 create foo and bar; through tunnel 2 see both, and
//     create foobar and barbaz.
//  2. n1 is the active node.
//  3. kill -9 the active node n1; the other data node becomes active (the
//     witness does not stay leader).
//  4. Through both tunnels the earlier files read back right, and foobarbaz,
//     barbazfoo, bazfoobar and barfoo are created, each nfs-cp exiting 0 on
//     its one try: the tunnel hides the fail-over.
//  5. n1 restarts, catches up and, preferred, becomes the active node again
//     within 20 s; all eight files are listed and read back the same
//     through both tunnels, and every data node has the same state hash at
//     the same applied index.
//
// A third connection, held open through tunnel 1 across the kill and the
// fail-back as a mounted client's would be, must survive both: the tunnel
// then reports reconnects and the active node of the moment.
func TestSeedWalkthrough(t *testing.T) {
	requireLibnfs(t)
	c := initCluster(t, Shape{Data: 2, Witness: true})
	for _, m := range c.Members {
		editYAML(t, m.Config, func(doc map[string]any) { doc["prefer"] = "n1" })
	}
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	n1 := c.Member("n1")
	// (2) comes first: fail-back makes n1 active within a few seconds of
	// the start, and it stays so while it is up.
	startedAt := time.Now()
	waitActive(t, c, n1, 20*time.Second)
	t.Logf("n1 (preferred) is the active node %v after the start", time.Since(startedAt).Round(time.Millisecond))
	c.exportVolume("data")
	t1, t2 := c.startTunnel("client1"), c.startTunnel("client2")

	var files fileSet
	put := func(tp *tunnelProc, name string) {
		t.Helper()
		data := content("seed:"+name, 4096+len(name)*1000)
		start := time.Now()
		if err := nfsPut(t, tp.Port, "data", "/"+name, data); err != nil {
			t.Fatalf("create %s through tunnel %s: %v", name, tp.name, err)
		}
		t.Logf("created %s through tunnel %s in %v", name, tp.name, time.Since(start).Round(time.Millisecond))
		files.add("/"+name, data)
	}
	list := func(tp *tunnelProc) []string {
		t.Helper()
		names, err := nfsList(tp.Port, "data", "/")
		if err != nil {
			t.Fatalf("list through tunnel %s: %v", tp.name, err)
		}
		return names
	}

	// (1)
	put(t1, "foo")
	put(t1, "bar")
	if got := list(t2); !slices.Equal(got, []string{"bar", "foo"}) {
		t.Fatalf("tunnel client2 lists %v, want [bar foo]", got)
	}
	put(t2, "foobar")
	put(t2, "barbaz")

	held := dialHeld(t, t1.Port)
	if err := held.null(10 * time.Second); err != nil {
		t.Fatalf("NULL through tunnel client1 before the kill: %v", err)
	}

	// (2) The active node is the leader's process: n1.
	old := c.waitCLILeader(20*time.Second, "")
	if old != n1 {
		t.Fatalf("keel status shows %s active before the kill; want the preferred n1", old.ID)
	}
	if st := t1.Status(); st.ActiveNode != old.ID {
		t.Logf("note: tunnel client1 says the active node is %q, status says %s", st.ActiveNode, old.ID)
	}

	// (3)
	killedAt := time.Now()
	old.Kill9()
	t.Logf("killed the active node %s (kill -9)", old.ID)

	// (4) The first write starts right away: the tunnel holds it until the
	// other data node is active.
	put(t1, "foobarbaz")
	failover := time.Since(killedAt)
	t.Logf("fail-over time (kill -9 of %s → first successful write through a tunnel): %v", old.ID, failover.Round(time.Millisecond))
	survivor := c.otherData(old)[0]
	if leader := c.waitCLILeader(20*time.Second, old.ID); leader != survivor {
		t.Fatalf("keel status shows %s leading, want %s", leader.ID, survivor.ID)
	}
	t.Logf("keel status shows %s active %v after the kill", survivor.ID, time.Since(killedAt).Round(time.Millisecond))
	var active *cluster.ActiveInfo
	waitFor(t, 5*time.Second, survivor.ID+"'s status to show it active", func() (bool, string) {
		st, err := survivor.Status()
		if err != nil {
			return false, err.Error()
		}
		active = st.Active
		return active != nil, fmt.Sprintf("state %s, active %v", st.Raft.State, st.Active)
	})
	t.Logf("%s became active %v after the kill (%s; take-over time %q)", survivor.ID,
		active.Since.Sub(killedAt).Round(time.Millisecond), active.Reason, active.TakeoverTime)
	put(t2, "barbazfoo")
	put(t1, "bazfoobar")
	put(t2, "barfoo")
	for _, tp := range []*tunnelProc{t1, t2} {
		for _, p := range []string{"/foo", "/bar", "/foobar", "/barbaz"} {
			got, err := nfsGet(t, tp.Port, "data", p)
			if err != nil {
				t.Errorf("read %s through tunnel %s after the fail-over: %v", p, tp.name, err)
			} else if sum(got) != sum(files.get(p)) {
				t.Errorf("%s through tunnel %s after the fail-over: %d bytes sha256 %s, want %s", p, tp.name, len(got), sum(got), sum(files.get(p)))
			}
		}
	}
	if err := held.null(20 * time.Second); err != nil {
		t.Errorf("the connection held open through tunnel client1 did not survive the fail-over: %v", err)
	}
	st := t1.Status()
	t.Logf("tunnel client1 status: %+v", st)
	if st.Reconnects < 1 {
		t.Errorf("tunnel client1 reports %d reconnects after the active node was killed; want ≥ 1", st.Reconnects)
	}
	if st.ActiveNode != survivor.ID {
		t.Errorf("tunnel client1 reports active node %q; want %s", st.ActiveNode, survivor.ID)
	}
	if st2 := t2.Status(); st2.ActiveNode != survivor.ID {
		t.Errorf("tunnel client2 reports active node %q; want %s", st2.ActiveNode, survivor.ID)
	}

	// (5) n1 comes back, catches up and takes the active role back.
	old.Start()
	restartedAt := time.Now()
	t.Logf("restarted %s", old.ID)
	waitActive(t, c, old, 20*time.Second)
	t.Logf("fail-back: %s is the active node again %v after its restart", old.ID, time.Since(restartedAt).Round(time.Millisecond))
	if st, err := old.Status(); err == nil && st.Active != nil {
		t.Logf("%s active: %+v", old.ID, *st.Active)
	}
	want := []string{"bar", "barbaz", "barbazfoo", "barfoo", "bazfoobar", "foo", "foobar", "foobarbaz"}
	l1, l2 := list(t1), list(t2)
	if !slices.Equal(l1, want) || !slices.Equal(l2, want) {
		t.Errorf("after %s's restart: tunnel client1 lists %v, client2 lists %v; want both %v", old.ID, l1, l2, want)
	}
	files.checkThrough(t, t1.Port, "data")
	files.checkThrough(t, t2.Port, "data")
	if err := held.null(20 * time.Second); err != nil {
		t.Errorf("the connection held open through tunnel client1 did not survive the fail-back: %v", err)
	}
	for _, tp := range []*tunnelProc{t1, t2} {
		st := tp.Status()
		t.Logf("tunnel %s status after the fail-back: %+v", tp.name, st)
		if st.ActiveNode != old.ID {
			t.Errorf("tunnel %s reports active node %q after the fail-back; want %s", tp.name, st.ActiveNode, old.ID)
		}
	}
	if st := t1.Status(); st.Reconnects < 2 {
		t.Errorf("tunnel client1 reports %d reconnects after the kill and the fail-back; want ≥ 2", st.Reconnects)
	}
	hs := waitConverged(t, c.DataMembers(), 30*time.Second)
	t.Logf("state of the data nodes: %v", hs)
	files.checkOnNodes(t, "data", c.DataMembers())
	for _, p := range files.paths() {
		var sums []string
		for _, m := range c.DataMembers() {
			s, _ := m.FileSum("data", p)
			sums = append(sums, fmt.Sprintf("%s=%.12s", m.ID, s))
		}
		t.Logf("%-11s %v", p, sums)
	}
}

// waitActive waits until keel status shows m leading and m's own status
// shows it active.
func waitActive(t *testing.T, c *Cluster, m *Member, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, m.ID+" to be the active node", func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		if st.Leader != m.ID {
			return false, fmt.Sprintf("keel status shows leader %q", st.Leader)
		}
		ns, err := m.Status()
		if err != nil {
			return false, err.Error()
		}
		return ns.Active != nil, fmt.Sprintf("%s state %s, active %v", m.ID, ns.Raft.State, ns.Active)
	})
}
