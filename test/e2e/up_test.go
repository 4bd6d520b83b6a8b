package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/testkit"
)

// TestUpAndStatus runs `keel up` as a user would: `keel status --json`
// (another process) shows a leader and the volume "data"; SIGINT stops keel
// up with status 0 within 20 s and leaves no node process behind; a second
// `keel up` on the same directory serves the data written before.
func TestUpAndStatus(t *testing.T) {
	requireBinary(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "keel")
	base := freeBasePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]) // keel up's NFS endpoint
	var pids []int
	t.Cleanup(func() { // whatever a failed test left running
		for _, pid := range pids {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range []string{"n1", "n2", "n3"} {
				t.Logf("--- last lines of %s ---\n%s", id, tailFile(filepath.Join(dir, "nodes", id, "keel.log"), 40))
			}
		}
	})

	status := func() (cluster.Status, string) {
		r := runKeel(t, 20*time.Second, "status", "--dir", dir, "--json")
		var st cluster.Status
		if r.Code != 0 {
			return st, fmt.Sprintf("keel status exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
		}
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			return st, fmt.Sprintf("keel status --json: %v: %s", err, r.Stdout)
		}
		return st, fmt.Sprintf("leader %q, %d volumes", st.Leader, len(st.Volumes))
	}
	waitReady := func(up *upProc) cluster.Status {
		t.Helper()
		var st cluster.Status
		waitFor(t, 60*time.Second, "keel up to say it is up and keel status to show a leader and the volume data", func() (bool, string) {
			if up.exited() {
				t.Fatalf("keel up exited early (%v):\n%s", up.err, tailFile(up.log, 30))
			}
			if b, _ := os.ReadFile(up.log); !strings.Contains(string(b), "keel is up") {
				return false, "keel up has not printed \"keel is up\""
			}
			var desc string
			st, desc = status()
			for _, v := range st.Volumes {
				if v.Name == "data" && st.Leader != "" {
					return true, desc
				}
			}
			return false, desc
		})
		return st
	}

	up := startUp(t, dir, base, listen, filepath.Join(tmp, "up1.log"))
	st := waitReady(up)
	pids = nil
	for _, m := range st.Nodes {
		if m.Node == nil {
			t.Fatalf("node %s unreachable in keel status: %s", m.ID, m.Error)
		}
		pids = append(pids, m.Node.PID)
	}
	if len(pids) != 3 {
		t.Fatalf("keel status lists %d nodes, want 3", len(pids))
	}
	t.Logf("keel up (pid %d) is up: leader %s, node pids %v", up.cmd.Process.Pid, st.Leader, pids)

	file := filepath.Join(tmp, "hello.txt")
	want := fmt.Sprintf("hello from %s at %s\n", t.Name(), time.Now().Format(time.RFC3339Nano))
	if err := os.WriteFile(file, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runKeel(t, 30*time.Second, "fs", "put", file, "data:/hello.txt", "--dir", dir); r.Code != 0 {
		t.Fatalf("keel fs put: exit %d: %s", r.Code, r.Stderr)
	}

	up.interrupt(t)
	checkGone(t, pids)
	for _, p := range upPorts(base) {
		if addr := "127.0.0.1:" + strconv.Itoa(p); listening(addr) {
			t.Errorf("something still listens on %s after keel up exited", addr)
		}
	}
	if listening(listen) {
		t.Errorf("keel up's NFS endpoint %s still listens after keel up exited", listen)
	}

	// Again, on the same directory: the same cluster and its data.
	up = startUp(t, dir, base, listen, filepath.Join(tmp, "up2.log"))
	st2 := waitReady(up)
	pids = nil
	for _, m := range st2.Nodes {
		if m.Node != nil {
			pids = append(pids, m.Node.PID)
		}
	}
	if st2.ClusterID != st.ClusterID {
		t.Errorf("second keel up runs cluster %s, want %s", st2.ClusterID, st.ClusterID)
	}
	if len(st2.Volumes) != 1 || st2.Volumes[0].ID != st.Volumes[0].ID {
		t.Errorf("second keel up has volumes %+v, want the first run's %+v", st2.Volumes, st.Volumes)
	}
	r := runKeel(t, 30*time.Second, "fs", "cat", "data:/hello.txt", "--dir", dir)
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("keel fs cat after restarting keel up: exit %d, got %q (stderr %s), want %q", r.Code, r.Stdout, r.Stderr, want)
	}
	up.interrupt(t)
	checkGone(t, pids)
}

// checkGone requires that the processes are gone.
func checkGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("node process %d is still alive after keel up exited", pid)
		}
	}
}

// upProc is a running `keel up`.
type upProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startUp(t *testing.T, dir string, base int, listen, logPath string, extra ...string) *upProc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(keelBin, append([]string{"up", "--dir", dir, "--base-port", strconv.Itoa(base), "--listen", listen,
		"--volume-size", "1GiB"}, extra...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { u.err = cmd.Wait(); close(u.done) }()
	t.Cleanup(func() {
		if !u.exited() {
			_ = cmd.Process.Kill()
			<-u.done
		}
		if t.Failed() {
			t.Logf("--- keel up output (%s) ---\n%s", logPath, tailFile(logPath, 40))
		}
	})
	return u
}

func (u *upProc) exited() bool {
	select {
	case <-u.done:
		return true
	default:
		return false
	}
}

// interrupt sends SIGINT (Ctrl-C) and requires exit status 0 within 20 s.
func (u *upProc) interrupt(t *testing.T) {
	t.Helper()
	start := time.Now()
	_ = u.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-u.done:
		if u.err != nil {
			t.Errorf("keel up exited with %v after SIGINT, want status 0:\n%s", u.err, tailFile(u.log, 20))
		}
		t.Logf("keel up stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatalf("keel up still running 20s after SIGINT:\n%s", tailFile(u.log, 20))
	}
}

// alive reports whether process pid exists (a zombie counts).
func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// upPorts are the ports keel up --base-port base uses: raft base+1…,
// admin base+101…, NFS base+201….
func upPorts(base int) []int {
	var out []int
	for _, off := range []int{1, 2, 3, 101, 102, 103, 201, 202, 203} {
		out = append(out, base+off)
	}
	return out
}

// freeBasePort finds a base port P for keel up with every port of
// upPorts(P) free, below the ephemeral port range.
func freeBasePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		base := 20000 + rand.IntN(1000)*10
		if testkit.ClaimPorts(upPorts(base)) {
			return base
		}
	}
	t.Fatal("no free port range for keel up")
	return 0
}
