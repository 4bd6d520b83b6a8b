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
// cfg.Node.SeedFrom into dataDir (a node rebuilt in its cluster), or, for
// a new cluster made from another's backup, the image cfg.RestoreFrom
// names, with this cluster's data nodes as the raft voters.
func seedState(ctx context.Context, cfg *config.Config, dataDir string, log *slog.Logger) (*cluster.SeedInfo, error) {
	raw, field, clusterID, id := cfg.Node.SeedFrom, "seed_from", cfg.ClusterID, ""
	var voters []replication.Peer
	if cfg.RestoreFrom != "" {
		raw, field, clusterID = cfg.RestoreFrom, "restore_from", ""
		raw, id = backup.ParseRef(raw)
		for _, p := range cfg.Peers {
			voters = append(voters, replication.Peer{ID: p.ID, Addr: p.RaftAddr, Role: p.Role})
		}
	}
	from := redact(raw)
	st, err := backup.Open(raw)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", field, err)
	}
	m, err := backup.FindState(ctx, st, id, clusterID)
	if err != nil {
		return nil, fmt.Errorf("node: %s %s: %w", field, from, err)
	}
	if voters == nil && !imageHasMember(m.State.Meta, cfg.Node.ID) {
		log.Warn("the state image's cluster configuration does not list this node; it will wait until it is added",
			"image", m.ID, "node", cfg.Node.ID)
	}
	log.Info("seeding state from a backup", "from", from, "image", m.ID, "image_cluster", m.State.ClusterID,
		"raft_index", m.State.RaftIndex, "bytes", m.Totals.DataBytes)
	start := time.Now()
	opts := backup.Options{ProgressEvery: 5 * time.Second, Progress: func(p backup.Progress) {
		log.Info("seeding", "bytes", p.Bytes, "of", p.Total, "files", p.Files, "rate_bytes_per_s", int64(p.Rate()))
	}}
	err = replication.SeedSnapshot(dataDir, m.State.Meta, voters, func(dir string) error {
		return backup.FetchState(ctx, st, m, dir, opts)
	})
	if err != nil {
		_ = os.RemoveAll(filepath.Join(dataDir, "raft"))
		return nil, fmt.Errorf("node: seed from state image %s in %s failed, nothing was started (fix it and start again, "+
			"or remove %s): %w", m.ID, from, field, err)
	}
	info := &cluster.SeedInfo{From: from, BackupID: m.ID, RaftIndex: m.State.RaftIndex, Bytes: m.Totals.DataBytes,
		Seconds: time.Since(start).Seconds(), At: time.Now().UTC(), Cluster: m.State.ClusterID}
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
