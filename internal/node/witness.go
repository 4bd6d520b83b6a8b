package node

import (
	"context"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

// compactWitnessLoop runs on a witness: from time to time it asks every data
// node how far its own log reaches, and drops only the entries all of them
// hold. A data node it has never heard from pins the whole log.
func (n *Node) compactWitnessLoop(ctx context.Context, every time.Duration) {
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		n.log.Error("witness log compaction disabled", "err", err)
		return
	}
	defer client.Close()
	known := map[string]uint64{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		upTo := ^uint64(0)
		for _, p := range n.peers() {
			if p.Role != config.RoleData {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := client.NodeStatus(cctx, p.AdminAddr)
			cancel()
			if err == nil {
				known[p.ID] = st.Raft.LastIndex
			}
			idx, ok := known[p.ID]
			if !ok {
				idx = 0
			}
			upTo = min(upTo, idx)
		}
		if upTo == 0 || upTo == ^uint64(0) {
			continue
		}
		dropped, err := n.repl.CompactWitnessLog(upTo)
		if err != nil {
			n.log.Warn("witness log compaction failed", "err", err)
		} else if dropped > 0 {
			n.log.Info("witness log compacted", "entries_dropped", dropped, "kept_after", upTo)
		}
	}
}

// pickDataLeader finds the data node a witness, or a leader whose disk is
// full, should hand leadership to: the reachable one with room on its disk
// and the highest applied index.
func (n *Node) pickDataLeader() (id, addr string, ok bool) {
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		return "", "", false
	}
	defer client.Close()
	type answer struct {
		p       config.Peer
		applied uint64
	}
	ch := make(chan *answer)
	count := 0
	for _, p := range n.peers() {
		if p.Role != config.RoleData || p.ID == n.cfg.Node.ID {
			continue
		}
		count++
		go func(p config.Peer) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			st, err := client.NodeStatus(ctx, p.AdminAddr)
			if err != nil || st.Raft.Disk.Full {
				ch <- nil
				return
			}
			ch <- &answer{p: p, applied: st.Raft.AppliedIndex}
		}(p)
	}
	var best *answer
	for i := 0; i < count; i++ {
		if a := <-ch; a != nil && (best == nil || a.applied > best.applied) {
			best = a
		}
	}
	if best == nil {
		return "", "", false
	}
	return best.p.ID, best.p.RaftAddr, true
}
