package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"keel/internal/backup"
	"keel/internal/cluster"
	"keel/internal/config"
)

// Scheduled backups (the config's backups:) run on the active node only.
// When a node becomes active it reads the time of each schedule's latest
// backup from the store, so a fail-over neither repeats a backup nor
// skips one; a run whose volume did not change since that backup makes no
// new one ("skipped"). After a backup the schedule's retention prunes that
// volume's older backups. Results are in status (on the active node) and
// in the metrics keel_backup_*.

type scheduler struct {
	n    *Node
	log  *slog.Logger
	mu   sync.Mutex
	jobs []*schedJob
}

type schedJob struct {
	cfg   config.BackupSchedule
	st    cluster.ScheduleStatus
	known bool             // the latest backup was read from the store since this node became active
	prev  *backup.Manifest // the latest backup of the volume (volume schedules)
}

func newScheduler(n *Node) *scheduler {
	s := &scheduler{n: n, log: n.log.With("component", "backup-schedule")}
	for _, b := range n.cfg.Backups {
		s.jobs = append(s.jobs, &schedJob{cfg: b, st: cluster.ScheduleStatus{Name: b.Name(), To: redact(b.To),
			Interval: b.Interval.D().String()}})
	}
	return s
}

func (s *scheduler) status() []cluster.ScheduleStatus {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cluster.ScheduleStatus, len(s.jobs))
	for i, j := range s.jobs {
		out[i] = j.st
	}
	return out
}

// loop checks the schedules every tick while this node leads.
func (s *scheduler) loop(ctx context.Context, tick time.Duration) {
	if len(s.jobs) == 0 {
		return
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.n.repl.IsLeader() {
			s.mu.Lock()
			for _, j := range s.jobs {
				j.known, j.prev, j.st.NextRun = false, nil, time.Time{}
			}
			s.mu.Unlock()
			continue
		}
		for _, j := range s.jobs {
			if ctx.Err() != nil || !s.n.repl.IsLeader() {
				break
			}
			s.runDue(ctx, j)
		}
	}
}

func (s *scheduler) runDue(ctx context.Context, j *schedJob) {
	if !j.known {
		if err := s.loadLatest(ctx, j); err != nil {
			s.finish(j, time.Now(), nil, fmt.Errorf("read the latest backup: %w", err))
			return
		}
	}
	s.mu.Lock()
	due := time.Now().After(j.st.NextRun)
	s.mu.Unlock()
	if !due {
		return
	}
	start := time.Now()
	res, err := s.run(ctx, j)
	s.finish(j, start, res, err)
}

// loadLatest reads the schedule's latest backup from its store.
func (s *scheduler) loadLatest(ctx context.Context, j *schedJob) error {
	st, err := backup.Open(j.cfg.To)
	if err != nil {
		return err
	}
	vol := j.cfg.Volume
	if j.cfg.State {
		vol = backup.StateVolume
	}
	m, err := backup.Find(ctx, st, "", vol)
	if errors.Is(err, backup.ErrNoBackup) {
		m, err = nil, nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.known, j.prev = true, m
	if m != nil {
		j.st.LastSuccess, j.st.LastBackup = m.Written, m.ID
		j.st.NextRun = m.Written.Add(j.cfg.Interval.D())
	} else {
		j.st.NextRun = time.Now()
	}
	return nil
}

func (s *scheduler) run(ctx context.Context, j *schedJob) (*backup.PushResult, error) {
	st, err := backup.Open(j.cfg.To)
	if err != nil {
		return nil, err
	}
	unlock, err := lockStore(ctx, j.cfg.To)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var res *backup.PushResult
	if j.cfg.State {
		res, err = s.n.pushState(ctx, st, backup.Options{Previous: j.prev, SkipUnchanged: true})
	} else {
		res, err = backup.PushVolume(ctx, s.n.fs, j.cfg.Volume, st, backup.Options{Previous: j.prev, SkipUnchanged: true})
	}
	if err != nil {
		return nil, err
	}
	if j.cfg.KeepLast > 0 || j.cfg.KeepDaily > 0 {
		pr, perr := backup.Prune(ctx, st, backup.PruneOptions{KeepLast: j.cfg.KeepLast, KeepDaily: j.cfg.KeepDaily, Volume: res.Volume})
		if perr != nil {
			s.log.Warn("retention: prune failed; the backup itself is made", "schedule", j.st.Name, "err", perr)
		} else if len(pr.Deleted) > 0 {
			s.log.Info("retention: pruned", "schedule", j.st.Name, "deleted", len(pr.Deleted), "bytes_freed", pr.BytesFreed)
		}
	}
	if m, err := backup.Find(ctx, st, res.ID, res.Volume); err == nil {
		s.mu.Lock()
		j.prev = m
		s.mu.Unlock()
	}
	return res, nil
}

func (s *scheduler) finish(j *schedJob, start time.Time, res *backup.PushResult, err error) {
	m := s.n.metrics
	s.mu.Lock()
	defer s.mu.Unlock()
	j.st.LastRun = start
	j.st.NextRun = start.Add(j.cfg.Interval.D())
	switch {
	case errors.Is(err, backup.ErrUnchanged):
		j.st.LastResult = "skipped: nothing changed since " + j.st.LastBackup
		m.BackupRuns.WithLabelValues(j.st.Name, "skipped").Inc()
		s.log.Debug("scheduled backup skipped: nothing changed", "schedule", j.st.Name)
	case err != nil:
		j.st.LastResult = "failed: " + err.Error()
		// Retry sooner than a whole interval, but not in a tight loop.
		j.st.NextRun = start.Add(min(j.cfg.Interval.D(), time.Minute))
		m.BackupRuns.WithLabelValues(j.st.Name, "failed").Inc()
		s.log.Warn("scheduled backup failed", "schedule", j.st.Name, "to", j.st.To, "err", err)
	default:
		j.st.LastResult = "ok"
		j.st.LastSuccess, j.st.LastBackup = time.Now(), res.ID
		m.BackupRuns.WithLabelValues(j.st.Name, "ok").Inc()
		m.BackupLastSuccess.WithLabelValues(j.st.Name).Set(float64(j.st.LastSuccess.Unix()))
		m.BackupUploaded.WithLabelValues(j.st.Name).Add(float64(res.BytesUploaded))
		s.log.Info("scheduled backup done", "schedule", j.st.Name, "id", res.ID, "uploaded", res.BytesUploaded,
			"scanned", res.BytesScanned, "duration", res.Duration)
	}
}

// scheduleTick is how often the schedules are checked: a tenth of the
// shortest interval, between 1 s and 30 s.
func scheduleTick(list []config.BackupSchedule) time.Duration {
	tick := 30 * time.Second
	for _, b := range list {
		tick = min(tick, b.Interval.D()/10)
	}
	return max(tick, time.Second)
}
