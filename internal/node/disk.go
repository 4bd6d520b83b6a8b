package node

import (
	"context"
	"os"
	"time"

	"keel/internal/cluster"
	"keel/internal/replication"
)

// peerDiskLoop asks the other members, every second while this node leads,
// whether their data disks are full, and tells replication: a leader counts
// the voters with room before it takes a change that adds data, and hands
// its role only to a node with room.
func (n *Node) peerDiskLoop(ctx context.Context) {
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		n.log.Error("peer disk checks disabled", "err", err)
		return
	}
	defer client.Close()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.repl.IsLeader() {
			continue
		}
		for _, p := range n.peers() {
			if p.ID == n.cfg.Node.ID {
				continue
			}
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
				defer cancel()
				if st, err := client.NodeStatus(cctx, p.AdminAddr); err == nil {
					n.repl.SetPeerDiskFull(p.ID, st.Raft.Disk.Full)
				}
			}()
		}
	}
}

// diskFatal ends the process when replication says it cannot go on for want
// of space (it has logged why and what to do).
func diskFatal(string) { os.Exit(replication.ExitDiskFull) }
