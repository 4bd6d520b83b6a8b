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
type activeTracker struct {
	mu          sync.Mutex
	info        *cluster.ActiveInfo
	lastLeader  string
	lastContact time.Time
}

func (n *Node) watchActive(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	was := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		is := n.repl.IsLeader()
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
			a.info = nil
			n.resEvents <- false
			n.log.Info("this node is no longer active; dropping NFS connections")
			if n.nfs != nil {
				n.nfs.CloseConnections()
			}
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
	for _, p := range n.cfg.Peers {
		if p.ID == id {
			return p.Role == config.RoleData
		}
	}
	return false
}
