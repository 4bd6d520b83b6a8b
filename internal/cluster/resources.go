package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"keel/internal/config"
)

// ResourceStatus is one resource's state, shown in status.
type ResourceStatus struct {
	Name         string    `json:"name"`
	State        string    `json:"state"` // stopped | starting | running | failed | stopping
	LastEvent    string    `json:"last_event,omitempty"`
	LastRun      time.Time `json:"last_run,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	MonitorFails int       `json:"monitor_failures"`
}

// Resources runs the resource hooks of the active node: Heartbeat's
// resource scripts. Commands run with sh -c, a timeout, and the environment
// variables KEEL_NODE_ID, KEEL_EVENT (start, stop, monitor) and
// KEEL_RESOURCE.
type Resources struct {
	NodeID string
	List   []config.Resource
	Log    *slog.Logger
	// OnMonitorFailure is called when a resource's monitor has failed
	// FailoverAfter times in a row (the node hands the active role away).
	OnMonitorFailure func(resource string)

	mu     sync.Mutex
	status map[string]*ResourceStatus
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *Resources) st(name string) *ResourceStatus {
	if r.status == nil {
		r.status = map[string]*ResourceStatus{}
	}
	s, ok := r.status[name]
	if !ok {
		s = &ResourceStatus{Name: name, State: "stopped"}
		r.status[name] = s
	}
	return s
}

// Status returns every resource's state.
func (r *Resources) Status() []ResourceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ResourceStatus, 0, len(r.List))
	for _, res := range r.List {
		out = append(out, *r.st(res.Name))
	}
	return out
}

// Activate runs every start command (in order) and starts the monitors.
func (r *Resources) Activate() {
	r.mu.Lock()
	if r.cancel != nil {
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.mu.Unlock()
	for _, res := range r.List {
		r.set(res.Name, "starting", "start", nil)
		err := r.run(ctx, res, "start", res.Start)
		if err != nil {
			r.set(res.Name, "failed", "start", err)
		} else {
			r.set(res.Name, "running", "start", nil)
		}
		if res.Monitor != "" {
			r.wg.Add(1)
			go r.monitor(ctx, res)
		}
	}
}

// Deactivate stops the monitors and runs every stop command (in reverse).
func (r *Resources) Deactivate() {
	r.mu.Lock()
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	r.wg.Wait()
	for i := len(r.List) - 1; i >= 0; i-- {
		res := r.List[i]
		r.set(res.Name, "stopping", "stop", nil)
		if err := r.run(context.Background(), res, "stop", res.Stop); err != nil {
			r.set(res.Name, "failed", "stop", err)
		} else {
			r.set(res.Name, "stopped", "stop", nil)
		}
	}
}

func (r *Resources) monitor(ctx context.Context, res config.Resource) {
	defer r.wg.Done()
	every := res.Interval.D()
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.run(ctx, res, "monitor", res.Monitor)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		s := r.st(res.Name)
		s.LastEvent, s.LastRun = "monitor", time.Now()
		if err != nil {
			s.MonitorFails++
			s.LastError = err.Error()
			s.State = "failed"
		} else {
			s.MonitorFails = 0
			s.State = "running"
		}
		fails := s.MonitorFails
		r.mu.Unlock()
		if err != nil && res.FailoverAfter > 0 && fails >= res.FailoverAfter && r.OnMonitorFailure != nil {
			r.Log.Warn("resource monitor failed repeatedly; handing the active role away", "resource", res.Name, "failures", fails)
			r.OnMonitorFailure(res.Name)
		}
	}
}

func (r *Resources) set(name, state, event string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st(name)
	s.State, s.LastEvent, s.LastRun = state, event, time.Now()
	if err != nil {
		s.LastError = err.Error()
	} else if state != "starting" && state != "stopping" {
		s.LastError = ""
	}
}

// run runs one hook command with its timeout; an empty command succeeds.
func (r *Resources) run(ctx context.Context, res config.Resource, event, command string) error {
	if command == "" {
		return nil
	}
	timeout := res.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), "KEEL_NODE_ID="+r.NodeID, "KEEL_EVENT="+event, "KEEL_RESOURCE="+res.Name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if len(text) > 500 {
		text = text[len(text)-500:]
	}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%s %s: timed out after %s", res.Name, event, timeout)
		} else {
			err = fmt.Errorf("%s %s: %v: %s", res.Name, event, err, text)
		}
		r.Log.Error("resource hook failed", "resource", res.Name, "event", event, "err", err)
		return err
	}
	if event != "monitor" {
		r.Log.Info("resource hook ran", "resource", res.Name, "event", event, "took", time.Since(start).Round(time.Millisecond), "output", text)
	}
	return nil
}
