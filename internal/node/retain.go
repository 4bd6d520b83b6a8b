package node

import (
	"context"
	"time"

	"keel/internal/backup"
	"keel/internal/config"
)

// retainLoop runs on every data node whose config schedules state images
// (backups: with state: true): it reads the raft index of the newest image
// in each such store and keeps the raft log from the oldest of those on
// (replication.RetainLogFrom), so that a node rebuilt from an image catches
// up from the log of whichever node leads by then, not by a full snapshot.
func (n *Node) retainLoop(ctx context.Context) {
	var urls []string
	every := 30 * time.Second
	for _, b := range n.cfg.Backups {
		if b.State {
			urls = append(urls, b.To)
			every = max(time.Second, min(every, b.Interval.D()/2))
		}
	}
	if len(urls) == 0 || n.cfg.Node.Role != config.RoleData {
		return
	}
	log := n.log.With("component", "log-retention")
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64
	for {
		from := uint64(0)
		for _, u := range urls {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			idx, err := newestImageIndex(cctx, u, n.cfg.ClusterID)
			cancel()
			if err != nil {
				log.Debug("cannot read the newest state image", "to", redact(u), "err", err)
				continue
			}
			if from == 0 || idx < from {
				from = idx
			}
		}
		if from != 0 {
			trailing, err := n.repl.RetainLogFrom(from)
			switch {
			case err != nil:
				log.Warn("cannot keep the raft log from the newest state image", "index", from, "err", err)
			case from != last:
				log.Info("keeping the raft log from the newest state image", "index", from, "trailing_logs", trailing)
			}
			last = from
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newestImageIndex(ctx context.Context, rawURL, clusterID string) (uint64, error) {
	st, err := backup.Open(rawURL)
	if err != nil {
		return 0, err
	}
	m, err := backup.FindState(ctx, st, "", clusterID)
	if err != nil {
		return 0, err
	}
	return m.State.RaftIndex, nil
}
