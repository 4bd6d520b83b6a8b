package node

import (
	"context"
	"sync"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

// activeTracker follows this node's leadership: when it becomes the active
// node it notes since when, after whom and why; when it stops being active
// it drops every NFS connection so that tunnels reconnect to the new one.
//
// A node that was frozen (SIGSTOP, a paused VM, starved of CPU) for longer
// than the leader lease cannot know whether it is still the leader: another
// node may have been elected meanwhile, and raft may take a moment after the
// thaw to step down. So as soon as it notices the gap it asks a quorum
// (read-index); if they do not confirm its leadership it leaves the active
// role and logs since when it was not active (last_active_at, the last tick
// before the freeze), and it becomes active again only once a quorum has
// confirmed that it leads. It served nothing in between: reads wait for a
// quorum's confirmation and writes for a quorum's commit. A
// witness leads only to hand leadership to a data node and is never the
// active node. The chaos tests check that no two nodes are active at once.
type activeTracker struct {
	mu          sync.Mutex
	info        *cluster.ActiveInfo
	lastLeader  string
	lastContact time.Time
}

func (n *Node) watchActive(ctx context.Context) {
	t := time.NewTicker(activeTick)
	defer t.Stop()
	was := false
	lease := max(n.cfg.Raft.LeaderLeaseTimeout.D(), 4*activeTick)
	last := time.Now()
	confirm := false // after a freeze: become active only once a quorum confirms the leadership
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		frozen, prev := now.Sub(last), last
		last = now
		if was && frozen > lease {
			// Frozen (or starved) longer than the lease: raft may still say
			// leader although another node was elected meanwhile. Ask a
			// quorum before serving on; a node merely starved of CPU is
			// confirmed and keeps its clients.
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := n.repl.ReadIndex(cctx)
			cancel()
			last = time.Now()
			if err != nil {
				n.active.mu.Lock()
				n.leaveActive("this node is no longer active: it was frozen longer than the leader lease and a quorum did not confirm its leadership; dropping NFS connections",
					"frozen_for", frozen.Round(time.Millisecond).String(), "last_active_at", prev, "err", err)
				n.active.mu.Unlock()
				was, confirm = false, true
				continue
			}
		}
		is := n.repl.IsLeader() && n.cfg.Node.Role == config.RoleData
		if is && !was && confirm {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := n.repl.ReadIndex(cctx)
			cancel()
			if err != nil {
				continue
			}
		}
		confirm = false
		a := &n.active
		a.mu.Lock()
		switch {
		case is && !was:
			now := time.Now()
			info := &cluster.ActiveInfo{Since: now, Previous: a.lastLeader}
			switch {
			case a.lastLeader == "":
				info.Reason = "first leader of this node's run"
			default:
				info.Reason = "elected after " + a.lastLeader + " stopped leading (crash, partition or hand-over)"
			}
			if !a.lastContact.IsZero() && a.lastLeader != "" {
				info.TakeoverTime = now.Sub(a.lastContact).Round(time.Millisecond).String()
			}
			a.info = info
			n.resEvents <- true
			n.log.Info("this node is now active", "previous", info.Previous, "reason", info.Reason, "takeover", info.TakeoverTime)
		case !is && was:
			n.leaveActive("this node is no longer active; dropping NFS connections")
		case !is:
			// A witness leads only for a moment before handing over: the
			// previous active node is the last data node that led.
			if id, _ := n.repl.Leader(); id != "" && id != n.cfg.Node.ID && n.isDataPeer(id) {
				a.lastLeader = id
				a.lastContact = n.repl.Raft().LastContact()
			}
		}
		a.mu.Unlock()
		was = is
	}
}

// activeTick is how often watchActive looks at raft's leadership.
const activeTick = 50 * time.Millisecond

// leaveActive ends this node's time as the active node: resources stop and
// NFS clients are disconnected, so that tunnels move to the new one. The
// caller holds n.active.mu.
func (n *Node) leaveActive(msg string, args ...any) {
	n.active.info = nil
	n.resEvents <- false
	n.log.Info(msg, args...)
	if n.nfs != nil {
		n.nfs.CloseConnections()
	}
}

func (n *Node) activeInfo() *cluster.ActiveInfo {
	n.active.mu.Lock()
	defer n.active.mu.Unlock()
	if n.active.info == nil {
		return nil
	}
	c := *n.active.info
	return &c
}

func (n *Node) isDataPeer(id string) bool {
	for _, p := range n.peers() {
		if p.ID == id {
			return p.Role == config.RoleData
		}
	}
	return false
}
