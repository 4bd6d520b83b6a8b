package replication

import (
	"context"
	"sync/atomic"
	"time"
)

// A leader whose process was frozen (SIGSTOP, a paused VM, a long stall)
// cannot trust one VerifyLeader round after it resumes: hashicorp/raft
// counts a heartbeat reply towards every verification waiting when the
// reply is processed, and replies sent by followers before the freeze, when
// this node still led, are processed only after it. The chaos runs saw a
// deposed leader's read-index succeed that way 3.3 s after another node
// was elected. So the node watches its own clock: for two leases after a
// gap longer than the lease (and in any call that itself sees such a gap)
// ReadIndex confirms leadership with a barrier, an entry that must commit
// on a quorum in the current term, which no stale reply can satisfy.

// freezeTick is how often the freeze watch ticks.
const freezeTick = 10 * time.Millisecond

// freezeWatch is read by every read-index (the NFS read path), so it is
// two atomics rather than a lock: Unix nanoseconds of the watch's last
// tick, and until when leadership is confirmed by a barrier.
type freezeWatch struct {
	last    atomic.Int64
	suspect atomic.Int64
}

func (n *Node) watchFreezes() {
	defer n.wg.Done()
	t := time.NewTicker(freezeTick)
	defer t.Stop()
	lease := n.lease()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			now := time.Now().UnixNano()
			if last := n.freeze.last.Load(); last != 0 && now-last > int64(lease) {
				n.freeze.suspect.Store(now + int64(2*lease))
			}
			n.freeze.last.Store(now)
		}
	}
}

// lease is the leader lease raft runs with.
func (n *Node) lease() time.Duration {
	if n.cfg.LeaderLeaseTimeout > 0 {
		return n.cfg.LeaderLeaseTimeout
	}
	return 500 * time.Millisecond // hashicorp/raft's default
}

// suspectFreeze reports whether this process was frozen for longer than
// the lease recently, or is resuming from such a freeze now.
func (n *Node) suspectFreeze() bool {
	now := time.Now().UnixNano()
	last := n.freeze.last.Load()
	return now < n.freeze.suspect.Load() || last != 0 && now-last > int64(n.lease())
}

// confirmByBarrier confirms leadership by committing a barrier entry.
func (n *Node) confirmByBarrier(ctx context.Context) error {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return n.mapErr(err)
	}
	return nil
}
