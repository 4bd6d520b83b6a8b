package cluster

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keel/internal/config"
)

func TestResourcesStartStopMonitor(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "active")
	var failovers atomic.Int32
	r := &Resources{
		NodeID: "n1",
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		List: []config.Resource{{
			Name:          "vip",
			Start:         "echo $KEEL_NODE_ID $KEEL_EVENT > " + marker,
			Stop:          "rm " + marker,
			Monitor:       "test -f " + marker,
			Interval:      config.Duration(20 * time.Millisecond),
			FailoverAfter: 2,
		}},
		OnMonitorFailure: func(string) { failovers.Add(1) },
	}
	r.Activate()
	b, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(b)) != "n1 start" {
		t.Fatalf("start hook: %q %v", b, err)
	}
	if st := r.Status(); st[0].State != "running" {
		t.Fatalf("status after start: %+v", st)
	}
	// The monitor notices the resource is gone and asks for a fail-over.
	os.Remove(marker)
	deadline := time.Now().Add(5 * time.Second)
	for failovers.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if failovers.Load() == 0 {
		t.Fatalf("no fail-over after monitor failures: %+v", r.Status())
	}
	if st := r.Status(); st[0].State != "failed" || st[0].MonitorFails < 2 {
		t.Fatalf("status after monitor failures: %+v", st)
	}
	os.WriteFile(marker, nil, 0o600)
	r.Deactivate()
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("stop hook did not run")
	}
	if st := r.Status(); st[0].State != "stopped" {
		t.Fatalf("status after stop: %+v", st)
	}
}

func TestResourceTimeout(t *testing.T) {
	r := &Resources{NodeID: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		List: []config.Resource{{Name: "slow", Start: "sleep 10", Timeout: config.Duration(100 * time.Millisecond)}}}
	start := time.Now()
	r.Activate()
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not enforced")
	}
	st := r.Status()
	if st[0].State != "failed" || !strings.Contains(st[0].LastError, "timed out") {
		t.Fatalf("status: %+v", st)
	}
	r.Deactivate()
}
