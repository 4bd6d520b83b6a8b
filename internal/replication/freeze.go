package replication

import (
	"context"
	"sync"
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

type freezeWatch struct {
	mu      sync.Mutex
	last    time.Time // the watch's last tick
	suspect time.Time // until then, leadership is confirmed by a barrier
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
			n.freeze.mu.Lock()
			if !n.freeze.last.IsZero() && time.Now().Sub(n.freeze.last) > lease {
				n.freeze.suspect = time.Now().Add(2 * lease)
			}
			n.freeze.last = time.Now()
			n.freeze.mu.Unlock()
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
	n.freeze.mu.Lock()
	defer n.freeze.mu.Unlock()
	now := time.Now()
	return now.Before(n.freeze.suspect) || !n.freeze.last.IsZero() && now.Sub(n.freeze.last) > n.lease()
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
