package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"keel/internal/config"
)

// Proc is one supervised process whose output is appended to a log file.
// It is killed (SIGKILL) if the test binary dies.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc starts bin with args, appending its stdout and stderr to log
// after a line naming what was started.
func StartProc(bin, log string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n=== testkit %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Running reports whether the process is alive (a stopped one counts).
func (p *Proc) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Err is how the process ended (nil while it runs or after a clean exit).
func (p *Proc) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Signal sends sig if the process runs.
func (p *Proc) Signal(sig syscall.Signal) {
	if p.Running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits up to 10 s for the process to be gone.
func (p *Proc) Kill() error {
	if !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still alive 10s after SIGKILL", p.PID())
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; it
// returns the exit error (nil for a clean exit), or kills it at the timeout.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Running() {
		return p.err
	}
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("pid %d did not exit within %v of SIGTERM", p.PID(), timeout)
	}
}

// InitCluster runs `bin init` in dir for data nodes n1…nData and, if
// witness, a witness w1, on free loopback ports, and returns the layout
// `keel init --json` reports.
func InitCluster(t testing.TB, bin, dir string, data int, witness bool, extra ...string) (*config.Layout, error) {
	t.Helper()
	// Data nodes: raft, admin and NFS ports; the witness: raft and admin.
	ports := FreePorts(t, 3*data+2)
	args := []string{"init", "--dir", dir, "--json"}
	for i := 0; i < data; i++ {
		args = append(args, "--node", fmt.Sprintf("n%d=127.0.0.1:%d:%d:%d", i+1, ports[3*i], ports[3*i+1], ports[3*i+2]))
	}
	if witness {
		args = append(args, "--witness", fmt.Sprintf("w1=127.0.0.1:%d:%d", ports[3*data], ports[3*data+1]))
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("keel init failed (exit %d): %s", ee.ExitCode(), errb.String())
		}
		return nil, fmt.Errorf("keel init: %w", err)
	}
	lay := &config.Layout{}
	if err := json.Unmarshal(out.Bytes(), lay); err != nil {
		return nil, fmt.Errorf("keel init --json: %w\n%s", err, out.String())
	}
	return lay, nil
}
