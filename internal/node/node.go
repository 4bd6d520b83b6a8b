// Package node wires one keel storage node together: configuration, the
// data-directory identity check, TLS, the raft group (internal/replication),
// the filesystem API (internal/fsapi) and the HTTPS admin API with /metrics.
package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/fsapi"
	"keel/internal/metrics"
	"keel/internal/nfs/rpc"
	"keel/internal/replication"
	"keel/internal/tlsutil"
	"keel/internal/version"
)

// ErrForeignDataDir is returned when a data directory belongs to another
// cluster or node.
var ErrForeignDataDir = errors.New("node: data directory belongs to another cluster or node")

// Node is a running storage node.
type Node struct {
	cfg       *config.Config
	log       *slog.Logger
	repl      *replication.Node
	fs        *fsapi.FS
	metrics   *metrics.Node
	admin     *http.Server
	adminLn   net.Listener
	raftLn    net.Listener
	started   time.Time
	clientTLS *tls.Config
	closeOnce sync.Once
	stop      context.CancelFunc
	nfs       *rpc.Server
	nfsLn     net.Listener
	tunnels   tunnels
	active    activeTracker
	resources *cluster.Resources
	resEvents chan bool
	resDone   chan struct{}
	seed      *cluster.SeedInfo // the state image this node was rebuilt from, if any
	schedules *scheduler
	members   memberList
	seedMu    sync.Mutex
}

// identity is written into a data directory on first start.
type identity struct {
	ClusterID  string `json:"cluster_id"`
	NodeID     string `json:"node_id"`
	Role       string `json:"role"`
	DataFormat int    `json:"data_format"`
}

// Start validates cfg, opens the node's data and starts serving.
func Start(cfg *config.Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("node", cfg.Node.ID)
	dataDir := cfg.Path(cfg.Node.DataDir)
	fresh := !hasState(dataDir)
	if err := checkIdentity(dataDir, cfg); err != nil {
		return nil, err
	}
	seed := loadSeed(dataDir)
	if (cfg.Node.SeedFrom != "" || cfg.RestoreFrom != "") && fresh && cfg.Node.Role == config.RoleData {
		var err error
		if seed, err = seedState(context.Background(), cfg, dataDir, logger.With("component", "seed")); err != nil {
			return nil, err
		}
	}
	caPEM, certPEM, keyPEM, err := tlsutil.LoadFiles(cfg.Path(cfg.TLS.CA), cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	serverTLS, err := tlsutil.ServerConfig(caPEM, certPEM, keyPEM, cfg.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	clientTLS, err := tlsutil.ClientConfig(caPEM, certPEM, keyPEM, cfg.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}

	n := &Node{cfg: cfg, log: logger.With("component", "node"), metrics: metrics.NewNode(), started: time.Now(), clientTLS: clientTLS, seed: seed}
	n.initMembers()
	// The admin port also answers machines that join with a token (no
	// certificate yet); the raft port never does.
	adminTLS := serverTLS.Clone()
	if err := tlsutil.WithJoin(adminTLS, caPEM); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.raftLn, err = net.Listen("tcp", cfg.Node.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("node: listen on raft_addr %s: %w (is another keel running there?)", cfg.Node.RaftAddr, err)
	}
	n.adminLn, err = net.Listen("tcp", cfg.Node.AdminAddr)
	if err != nil {
		n.raftLn.Close()
		return nil, fmt.Errorf("node: listen on admin_addr %s: %w (is another keel running there?)", cfg.Node.AdminAddr, err)
	}
	var peers []replication.Peer
	for _, p := range n.peers() {
		peers = append(peers, replication.Peer{ID: p.ID, Addr: p.RaftAddr, Role: p.Role})
	}
	n.repl, err = replication.Open(replication.Config{
		ID: cfg.Node.ID, Role: cfg.Node.Role, Dir: dataDir,
		Listener: n.raftLn, ServerTLS: serverTLS, ClientTLS: clientTLS,
		Peers: peers, Bootstrap: cfg.Bootstrap,
		HeartbeatTimeout:   cfg.Raft.HeartbeatTimeout.D(),
		ElectionTimeout:    cfg.Raft.ElectionTimeout.D(),
		LeaderLeaseTimeout: cfg.Raft.LeaderLeaseTimeout.D(),
		CommitTimeout:      cfg.Raft.CommitTimeout.D(),
		ApplyTimeout:       cfg.Raft.ApplyTimeout.D(),
		SnapshotInterval:   cfg.Raft.SnapshotInterval.D(),
		SnapshotThreshold:  cfg.Raft.SnapshotThreshold,
		TrailingLogs:       cfg.Raft.TrailingLogs,
		WALSegmentSize:     int(cfg.Raft.LogSegmentSize),
		Logger:             logger, Metrics: n.metrics,
		PickTransferTarget: n.pickDataLeader,
		MinFreeBytes:       uint64(cfg.Node.MinFreeSpace),
		Fatal:              diskFatal,
	})
	if err != nil {
		n.raftLn.Close()
		n.adminLn.Close()
		return nil, err
	}
	n.fs = fsapi.New(n.repl)
	n.resources = &cluster.Resources{NodeID: cfg.Node.ID, List: cfg.Resources, Log: n.log.With("component", "resources"),
		OnMonitorFailure: func(string) {
			if err := n.repl.Transfer("", ""); err != nil {
				n.log.Warn("fail-over after monitor failures did not happen", "err", err)
			}
		}}
	n.admin = &http.Server{
		Handler:           requireCert(n.routes()),
		TLSConfig:         adminTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := n.admin.ServeTLS(n.adminLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("admin API stopped", "err", err)
		}
	}()
	if err := n.startNFS(); err != nil {
		_ = n.admin.Close()
		_ = n.repl.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.resEvents = make(chan bool, 64)
	n.resDone = make(chan struct{})
	go func() { n.resourceLoop(ctx, n.resEvents); close(n.resDone) }()
	go n.watchActive(ctx)
	go n.preferLoop(ctx)
	n.schedules = newScheduler(n)
	go n.schedules.loop(ctx, scheduleTick(cfg.Backups))
	go n.retainLoop(ctx)
	go n.membersLoop(ctx)
	go n.peerDiskLoop(ctx)
	if cfg.Node.Role == config.RoleWitness {
		every := cfg.Raft.SnapshotInterval.D()
		if every <= 0 {
			every = 2 * time.Minute
		}
		go n.compactWitnessLoop(ctx, every)
	}
	n.log.Info("node started", "role", cfg.Node.Role, "raft_addr", cfg.Node.RaftAddr, "admin_addr", cfg.Node.AdminAddr,
		"data_dir", dataDir, "version", version.String())
	return n, nil
}

// checkIdentity refuses a data directory made for another cluster or node,
// or with another data format, and stamps a new one.
func checkIdentity(dir string, cfg *config.Config) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: data_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "IDENTITY")
	want := identity{ClusterID: cfg.ClusterID, NodeID: cfg.Node.ID, Role: cfg.Node.Role, DataFormat: version.DataFormat}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		ents, _ := os.ReadDir(dir)
		if len(ents) > 0 {
			return fmt.Errorf("%w: %s is not empty and has no IDENTITY file; point data_dir at an empty directory", ErrForeignDataDir, dir)
		}
		b, _ := json.MarshalIndent(want, "", "  ")
		return tlsutil.WriteFile0600(path, b)
	}
	if err != nil {
		return fmt.Errorf("node: read %s: %w", path, err)
	}
	var have identity
	if err := json.Unmarshal(b, &have); err != nil {
		return fmt.Errorf("node: %s is corrupt: %w", path, err)
	}
	switch {
	case have.ClusterID != want.ClusterID:
		return fmt.Errorf("%w: %s belongs to cluster %s, but this config is for cluster %s; use that cluster's config, or an empty data_dir", ErrForeignDataDir, dir, have.ClusterID, want.ClusterID)
	case have.NodeID != want.NodeID:
		return fmt.Errorf("%w: %s belongs to node %s, not %s; each node needs its own data_dir", ErrForeignDataDir, dir, have.NodeID, want.NodeID)
	case have.Role != want.Role:
		return fmt.Errorf("%w: %s was a %s node's, and this config makes it a %s; a role cannot change in place", ErrForeignDataDir, dir, have.Role, want.Role)
	case have.DataFormat != want.DataFormat:
		return fmt.Errorf("node: %s holds data format %d and this keel (%s) reads format %d; run a keel version made for format %d", dir, have.DataFormat, version.String(), want.DataFormat, have.DataFormat)
	}
	return nil
}

// FS returns the node's filesystem API.
func (n *Node) FS() *fsapi.FS { return n.fs }

// Replication returns the node's raft member.
func (n *Node) Replication() *replication.Node { return n.repl }

// AdminAddr returns the address the admin API listens on.
func (n *Node) AdminAddr() string { return n.adminLn.Addr().String() }

// WaitLeader waits until a leader is known.
func (n *Node) WaitLeader(ctx context.Context) error {
	for {
		if id, _ := n.repl.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: no leader elected: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops serving and closes the node's stores.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		n.stop()
		<-n.resDone // stop hooks have run
		if n.nfs != nil {
			n.nfs.Close()
		}
		_ = n.admin.Shutdown(ctx)
		err = n.repl.Close()
		n.log.Info("node stopped")
	})
	return err
}
