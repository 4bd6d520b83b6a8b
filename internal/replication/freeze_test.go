package replication

import (
	"testing"
	"time"

	"keel/internal/fsstate"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// After a freeze longer than the lease, a read-index confirms leadership
// with a barrier entry committed on a quorum (one more log entry), not with
// a heartbeat round that replies from before the freeze could satisfy.
func TestReadIndexAfterFreezeCommitsABarrier(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30})
	l := c.leader()
	if err := l.ReadIndex(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	before := l.raft.LastIndex()
	if err := l.ReadIndex(ctxT(t)); err != nil || l.raft.LastIndex() != before {
		t.Fatalf("an ordinary read-index: %v, log %d → %d (want no new entry)", err, before, l.raft.LastIndex())
	}
	l.freeze.last.Store(time.Now().Add(-3 * time.Second).UnixNano()) // as if the process had just been resumed
	if !l.suspectFreeze() {
		t.Fatal("a 3 s gap is not taken for a freeze")
	}
	if err := l.ReadIndex(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if l.raft.LastIndex() <= before {
		t.Fatalf("read-index after a freeze appended nothing (log at %d)", l.raft.LastIndex())
	}
	// The watch notices the gap itself and stays suspicious for two leases.
	time.Sleep(3 * freezeTick)
	if !l.suspectFreeze() {
		t.Fatal("the suspicion ended at the next tick")
	}
	time.Sleep(2*l.lease() + 5*freezeTick)
	if l.suspectFreeze() {
		t.Fatal("still suspicious two leases after the freeze")
	}
}

// A sole voter confirms reads without a heartbeat round; with peers every
// read is confirmed by one.
func TestReadIndexOfASoleVoter(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		how   string
	}{{[]string{RoleData}, "sole-voter"}, {[]string{RoleData, RoleData, RoleData}, "heartbeat"}} {
		c := newTestCluster(t, tc.roles...)
		c.startAll()
		c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30})
		l := c.leader()
		if err := l.ReadIndex(ctxT(t)); err != nil { // the term's first read commits a barrier
			t.Fatal(err)
		}
		before := l.raft.LastIndex()
		for range 20 {
			if err := l.ReadIndex(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		if got := testutil.ToFloat64(l.metrics.ReadConfirms.WithLabelValues(tc.how)); got != 21 {
			t.Errorf("%d voters: %v reads confirmed by %s, want 21", len(tc.roles), got, tc.how)
		}
		if l.raft.LastIndex() != before {
			t.Errorf("%d voters: reads appended entries (log %d → %d)", len(tc.roles), before, l.raft.LastIndex())
		}
		c.closeAll()
	}
}
