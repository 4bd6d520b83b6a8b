// Package metrics owns keel's Prometheus metrics: one registry per node (so
// several nodes can run in one test process) and the collectors every other
// package updates.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Node holds the metrics of one node.
type Node struct {
	Registry *prometheus.Registry

	CommitLatency  prometheus.Histogram   // propose → committed and applied on the leader
	ApplyLatency   prometheus.Histogram   // state-machine apply of one batch
	ReadIndexWait  prometheus.Histogram   // read-index barrier
	ReadConfirms   *prometheus.CounterVec // how read-indexes confirmed leadership: heartbeat, barrier, sole-voter
	BytesWritten   prometheus.Counter     // file payload bytes accepted by writes
	AppliedEntries prometheus.Counter     // log entries applied
	LeaderChanges  prometheus.Counter     // leadership observations
	IsLeader       prometheus.Gauge       // 1 when this node is the leader
	Term           prometheus.Gauge       // current raft term
	LogBytes       prometheus.Gauge       // size of the raft log on disk
	SnapshotBytes  prometheus.Gauge       // size of the newest raft snapshot
	RaftSentBytes  *prometheus.CounterVec // bytes sent on raft connections, by peer address
	RaftRecvBytes  prometheus.Counter     // bytes received on raft connections
	SnapshotsTaken prometheus.Counter
	SnapshotsSent  prometheus.Counter // snapshot streams opened for install on a follower
	// SnapshotInstalling is 1 while this node receives a leader's snapshot
	// (phase "receive") or replaces its state with one (phase "restore").
	SnapshotInstalling   *prometheus.GaugeVec
	SnapshotInstallBytes prometheus.Counter     // snapshot stream bytes received from leaders
	SnapshotInstalls     *prometheus.CounterVec // finished receives, by result: installed, failed
	Errors               *prometheus.CounterVec
	DiskFree             prometheus.Gauge // free bytes on the data disk
	DiskFull             prometheus.Gauge // 1 while the data disk is full (below node.min_free_space, or writes meet ENOSPC)

	NFSInFlightBytes prometheus.Gauge       // bytes held by NFS calls in flight, all connections
	NFSInFlightLimit prometheus.Gauge       // the server-wide budget of those bytes
	NFSInFlightWaits *prometheus.CounterVec // calls that waited for memory, by limit (connection, server)
	NFSStalledClosed prometheus.Counter     // connections closed for holding memory while their peer stalled

	BackupRuns        *prometheus.CounterVec // scheduled backups by schedule and result (ok, skipped, failed)
	BackupLastSuccess *prometheus.GaugeVec   // Unix time of each schedule's last successful backup
	BackupUploaded    *prometheus.CounterVec // bytes uploaded by scheduled backups
}

// NewNode creates a registry with keel's collectors and the Go runtime ones.
func NewNode() *Node {
	lat := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "keel", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 100µs … 13s
		})
	}
	m := &Node{
		Registry:      prometheus.NewRegistry(),
		CommitLatency: lat("commit_latency_seconds", "Time from proposing a change to its being committed on a quorum and applied on the leader."),
		ApplyLatency:  lat("apply_latency_seconds", "Time to apply one batch of committed entries to the state machine."),
		ReadIndexWait: lat("read_index_seconds", "Time a read waits for the leader to confirm leadership and apply up to the commit index."),
		ReadConfirms: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "read_index_confirmations_total",
			Help: "Reads whose leadership check was a heartbeat round (heartbeat), a committed barrier entry after a freeze (barrier), or none because this node is the only voter (sole-voter)."}, []string{"how"}),
		BytesWritten:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "written_bytes_total", Help: "File payload bytes committed through this node."}),
		AppliedEntries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "applied_entries_total", Help: "Raft log entries applied to the state machine."}),
		LeaderChanges:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "leader_changes_total", Help: "Leadership changes observed by this node."}),
		IsLeader:       prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "is_leader", Help: "1 if this node is the raft leader (the active node)."}),
		Term:           prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "raft_term", Help: "Current raft term."}),
		LogBytes:       prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "raft_log_bytes", Help: "Size of the raft log on disk."}),
		SnapshotBytes:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "raft_snapshot_bytes", Help: "Size of the newest raft snapshot."}),
		RaftSentBytes:  prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "raft_sent_bytes_total", Help: "Bytes sent on raft connections, by peer."}, []string{"peer"}),
		RaftRecvBytes:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "raft_received_bytes_total", Help: "Bytes received on raft connections (replication and catch-up)."}),
		SnapshotsTaken: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "raft_snapshots_total", Help: "Raft snapshots (state checkpoints) taken or installed."}),
		SnapshotsSent:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "raft_snapshots_sent_total", Help: "Snapshots streamed to followers that were too far behind for the log."}),
		SnapshotInstalling: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "keel", Name: "raft_snapshot_install_in_progress",
			Help: "1 while this node receives a leader's snapshot (phase receive), then until its state is replaced by it (phase restore)."}, []string{"phase"}),
		SnapshotInstallBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "raft_snapshot_install_received_bytes_total",
			Help: "Snapshot stream bytes received from leaders."}),
		SnapshotInstalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "raft_snapshot_installs_total",
			Help: "Snapshot streams received from leaders, by result (installed, failed)."}, []string{"result"}),
		Errors:   prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "errors_total", Help: "Errors by kind."}, []string{"kind"}),
		DiskFree: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "disk_free_bytes", Help: "Free bytes on the data disk (statfs, what unprivileged writers may use)."}),
		DiskFull: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "disk_full",
			Help: "1 while the data disk is full: its free space is below node.min_free_space, or a write of the raft log or the state met ENOSPC in the last 10 s."}),

		NFSInFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "nfs_inflight_bytes",
			Help: "Bytes held by NFS calls in flight on all connections: request records being read or served, and reservations for replies not yet written."}),
		NFSInFlightLimit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Name: "nfs_inflight_limit_bytes",
			Help: "The server-wide budget of keel_nfs_inflight_bytes (nfs.max_inflight_bytes)."}),
		NFSInFlightWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "nfs_inflight_waits_total",
			Help: "NFS calls whose connection stopped being read until memory was free: limit=connection (its own calls held its share, nfs.max_conn_inflight_bytes) or server (all connections held the budget)."}, []string{"limit"}),
		NFSStalledClosed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Name: "nfs_stalled_connections_closed_total",
			Help: "NFS connections closed because they held memory others waited for while their client took over 5 s to take a piece of a reply or to finish sending a call."}),

		BackupRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "backup_runs_total",
			Help: "Scheduled backups run on this node, by schedule (volume or @state) and result (ok, skipped, failed)."}, []string{"schedule", "result"}),
		BackupLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "keel", Name: "backup_last_success_timestamp_seconds",
			Help: "Unix time of the last successful scheduled backup made by this node, by schedule."}, []string{"schedule"}),
		BackupUploaded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Name: "backup_uploaded_bytes_total",
			Help: "Bytes uploaded to backup stores by scheduled backups, by schedule."}, []string{"schedule"}),
	}
	m.Registry.MustRegister(
		m.CommitLatency, m.ApplyLatency, m.ReadIndexWait, m.ReadConfirms, m.BytesWritten, m.AppliedEntries,
		m.LeaderChanges, m.IsLeader, m.Term, m.LogBytes, m.SnapshotBytes, m.RaftSentBytes,
		m.RaftRecvBytes, m.SnapshotsTaken, m.SnapshotsSent, m.SnapshotInstalling, m.SnapshotInstallBytes, m.SnapshotInstalls, m.Errors, m.DiskFree, m.DiskFull,
		m.NFSInFlightBytes, m.NFSInFlightLimit, m.NFSInFlightWaits, m.NFSStalledClosed,
		m.BackupRuns, m.BackupLastSuccess, m.BackupUploaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Node) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
