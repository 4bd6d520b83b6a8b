package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"keel/internal/backup"
	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/replication"
	"keel/internal/tlsutil"
)

// A data node rebuilt after the loss of its disk (the seed's design goal)
// starts from the newest state image in node.seed_from instead of asking
// the leader for everything: the image is fetched, every chunk checked,
// made the node's newest raft snapshot, and the state restored from it;
// raft then sends only the entries after the image's index (or, if the
// leader compacted its log past that, a snapshot). The record of the seed
// is kept in the data directory and shown in status.

const seedFile = "SEEDED.json"

// hasState reports whether a data directory holds raft or filesystem state.
func hasState(dataDir string) bool {
	for _, d := range []string{"raft", "state"} {
		if _, err := os.Stat(filepath.Join(dataDir, d)); err == nil {
			return true
		}
	}
	return false
}

// seedState fetches the newest state image of the cluster from
// cfg.Node.SeedFrom into dataDir.
func seedState(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger) (*cluster.SeedInfo, error) {
	from := redact(cfg.Node.SeedFrom)
	st, err := backup.Open(cfg.Node.SeedFrom)
	if err != nil {
		return nil, fmt.Errorf("node: seed_from: %w", err)
	}
	m, err := backup.FindState(ctx, st, "", cfg.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("node: seed_from %s: %w", from, err)
	}
	if !imageHasMember(m.State.Meta, cfg.Node.ID) {
		log.Warn("the state image's cluster configuration does not list this node; it will wait until it is added",
			"image", m.ID, "node", cfg.Node.ID)
	}
	log.Info("seeding state from a backup", "from", from, "image", m.ID, "raft_index", m.State.RaftIndex,
		"bytes", m.Totals.DataBytes)
	start := time.Now()
	opts := backup.Options{ProgressEvery: 5 * time.Second, Progress: func(p backup.Progress) {
		log.Info("seeding", "bytes", p.Bytes, "of", p.Total, "files", p.Files, "rate_bytes_per_s", int64(p.Rate()))
	}}
	err = replication.SeedSnapshot(dataDir, m.State.Meta, func(dir string) error {
		return backup.FetchState(ctx, st, m, dir, opts)
	})
	if err != nil {
		_ = os.RemoveAll(filepath.Join(dataDir, "raft"))
		return nil, fmt.Errorf("node: seed from state image %s in %s failed, nothing was started (fix it and start again, "+
			"or remove seed_from to catch up from the leader alone): %w", m.ID, from, err)
	}
	info := &cluster.SeedInfo{From: from, BackupID: m.ID, RaftIndex: m.State.RaftIndex, Bytes: m.Totals.DataBytes,
		Seconds: time.Since(start).Seconds(), At: time.Now().UTC()}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := tlsutil.WriteFile0600(filepath.Join(dataDir, seedFile), b); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	log.Info("seeded state from a backup; catching up from the leader", "image", m.ID, "raft_index", info.RaftIndex,
		"bytes", info.Bytes, "seconds", info.Seconds)
	return info, nil
}

// loadSeed returns the record of an earlier seed, if any.
func loadSeed(dataDir string) *cluster.SeedInfo {
	b, err := os.ReadFile(filepath.Join(dataDir, seedFile))
	if err != nil {
		return nil
	}
	var info cluster.SeedInfo
	if json.Unmarshal(b, &info) != nil {
		return nil
	}
	return &info
}

func imageHasMember(meta json.RawMessage, id string) bool {
	var m struct {
		Configuration struct {
			Servers []struct{ ID string }
		}
	}
	if json.Unmarshal(meta, &m) != nil {
		return false
	}
	for _, s := range m.Configuration.Servers {
		if s.ID == id {
			return true
		}
	}
	return false
}

// redact removes credentials and query secrets from a backup URL for logs
// and status.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

var errNotData = errors.New("node: a witness holds no state to back up")
