package node

import (
	"context"
	"time"

	"keel/internal/cluster"
)

// resourceEvents runs resource hooks in the order leadership changed.
func (n *Node) resourceLoop(ctx context.Context, events <-chan bool) {
	for {
		select {
		case <-ctx.Done():
			n.resources.Deactivate()
			return
		case active := <-events:
			if active {
				n.resources.Activate()
			} else {
				n.resources.Deactivate()
			}
		}
	}
}

// preferLoop gives the seed's auto_failback: while this node leads and the
// preferred node is up, healthy and caught up for three checks in a row,
// leadership is handed to it.
func (n *Node) preferLoop(ctx context.Context) {
	prefer := n.cfg.Prefer
	if prefer == "" || prefer == n.cfg.Node.ID {
		return
	}
	var addr, raftAddr string
	for _, p := range n.peers() {
		if p.ID == prefer {
			addr, raftAddr = p.AdminAddr, p.RaftAddr
		}
	}
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		n.log.Error("prefer: cannot reach peers", "err", err)
		return
	}
	defer client.Close()
	good := 0
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.repl.IsLeader() {
			good = 0
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := client.NodeStatus(cctx, addr)
		cancel()
		commit := n.repl.Raft().CommitIndex()
		if err != nil || st.Health != "ok" || st.Raft.State != "follower" || st.Raft.AppliedIndex+16 < commit {
			good = 0
			continue
		}
		good++
		if good < 3 {
			continue
		}
		good = 0
		n.log.Info("preferred node is back and caught up; handing the active role to it", "prefer", prefer)
		if err := n.repl.Transfer(prefer, raftAddr); err != nil {
			n.log.Warn("fail-back to the preferred node failed; will retry", "prefer", prefer, "err", err)
		}
	}
}
