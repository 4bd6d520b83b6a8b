package e2e

// Helpers of the fail-over tests (failover_*_test.go): NFS clients are the
// libnfs utilities (nfs-cp, nfs-ls) run as processes, talking NFSv3 to a
// `keel tunnel` process on a local port, the way a client machine does.
// Every client command runs once, bounded by a timeout: the tests check that
// the tunnel hides a fail-over, so a client command is never retried.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/tunnel"
)

// nfsTimeout bounds one libnfs command. libnfs waits for a reply forever,
// so a hung tunnel shows up as this timeout.
const nfsTimeout = 45 * time.Second

// requireLibnfs skips the test when the libnfs utilities are not installed.
func requireLibnfs(t *testing.T) {
	t.Helper()
	requireBinary(t)
	for _, tool := range []string{"nfs-cp", "nfs-ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: these tests need the libnfs utilities (Debian: apt-get install libnfs-utils)", tool)
		}
	}
}

// clientYAML is the path of the cluster's client.yaml.
func (c *Cluster) clientYAML() string { return c.Layout.ClientConfig }

// keel runs a keel command against the cluster (--config client.yaml).
func (c *Cluster) keel(timeout time.Duration, args ...string) cmdResult {
	c.t.Helper()
	return runKeel(c.t, timeout, append(args, "--config", c.clientYAML())...)
}

// exportVolume creates volume name (1 GiB) with the CLI and exports it
// read-write, without root squashing, to 127.0.0.0/8.
func (c *Cluster) exportVolume(name string) {
	c.t.Helper()
	if r := c.keel(30*time.Second, "volume", "create", name, "--size", "1GiB"); r.Code != 0 {
		c.t.Fatalf("keel volume create %s: exit %d: %s", name, r.Code, r.Stderr)
	}
	if r := c.keel(30*time.Second, "volume", "export", name, "--no-root-squash", "--clients", "127.0.0.0/8"); r.Code != 0 {
		c.t.Fatalf("keel volume export %s: exit %d: %s", name, r.Code, r.Stderr)
	}
}

// cliStatus is `keel status --json`.
func (c *Cluster) cliStatus() (cluster.Status, error) {
	c.t.Helper()
	r := c.keel(20*time.Second, "status", "--json")
	var st cluster.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		return st, fmt.Errorf("keel status --json: exit %d: %v: %s", r.Code, err, r.Stderr)
	}
	return st, nil
}

// waitCLILeader polls `keel status --json` until a data node other than
// not leads, and returns it. A witness that leads is allowed only for a
// moment (maxWitness), then the test fails.
func (c *Cluster) waitCLILeader(timeout time.Duration, not string) *Member {
	c.t.Helper()
	const maxWitness = 3 * time.Second
	var leader string
	var witnessSince time.Time
	waitFor(c.t, timeout, fmt.Sprintf("keel status to show a data node other than %q leading", not), func() (bool, string) {
		st, err := c.cliStatus()
		if err != nil {
			return false, err.Error()
		}
		leader = st.Leader
		if leader != "" && c.Member(leader).Role != "data" {
			if witnessSince.IsZero() {
				witnessSince = time.Now()
			} else if time.Since(witnessSince) > maxWitness {
				c.t.Fatalf("the witness %s has led for more than %v", leader, maxWitness)
			}
			return false, "the witness " + leader + " leads"
		}
		witnessSince = time.Time{}
		return leader != "" && leader != not, fmt.Sprintf("leader %q term %d", st.Leader, st.Term)
	})
	return c.Member(leader)
}

// otherData returns the data members except those given.
func (c *Cluster) otherData(not ...*Member) []*Member {
	var out []*Member
	for _, m := range c.DataMembers() {
		skip := false
		for _, n := range not {
			skip = skip || m == n
		}
		if !skip {
			out = append(out, m)
		}
	}
	return out
}

// tunnelProc is one `keel tunnel` process: a client machine's local NFS
// endpoint.
type tunnelProc struct {
	t          *testing.T
	name       string
	Port       int    // NFS and MOUNT port
	StatusAddr string // --status-addr
	Log        string
	cmd        *exec.Cmd
	done       chan struct{}
}

// startTunnel runs `keel tunnel --cluster client.yaml` on free local ports
// and waits until it accepts connections.
func (c *Cluster) startTunnel(name string) *tunnelProc {
	t := c.t
	t.Helper()
	ports := freePorts(t, 2)
	tp := &tunnelProc{t: t, name: name, Port: ports[0], StatusAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Log: filepath.Join(c.Dir, "tunnel-"+name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(tp.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tp.cmd = exec.Command(keelBin, "tunnel", "--cluster", c.clientYAML(),
		"--listen", fmt.Sprintf("127.0.0.1:%d", tp.Port), "--status-addr", tp.StatusAddr)
	tp.cmd.Stdout, tp.cmd.Stderr = f, f
	tp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := tp.cmd.Start(); err != nil {
		t.Fatalf("start keel tunnel %s: %v", name, err)
	}
	go func() { _ = tp.cmd.Wait(); close(tp.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of tunnel %s (%s) ---\n%s", name, tp.Log, tailFile(tp.Log, 40))
		}
		_ = tp.cmd.Process.Kill()
		<-tp.done
	})
	waitFor(t, 10*time.Second, "keel tunnel "+name+" to listen", func() (bool, string) {
		select {
		case <-tp.done:
			t.Fatalf("keel tunnel %s exited: %s", name, tailFile(tp.Log, 20))
		default:
		}
		return listening(fmt.Sprintf("127.0.0.1:%d", tp.Port)) && listening(tp.StatusAddr), "not listening yet"
	})
	return tp
}

// Status is `keel tunnel status --status-addr … --json`.
func (tp *tunnelProc) Status() tunnel.Status {
	tp.t.Helper()
	r := runKeel(tp.t, 10*time.Second, "tunnel", "status", "--status-addr", tp.StatusAddr, "--json")
	var st tunnel.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		tp.t.Fatalf("keel tunnel status --json (tunnel %s): exit %d: %v: %s", tp.name, r.Code, err, r.Stderr)
	}
	return st
}

// nfsURL is a libnfs URL of vol:path on a local NFS port (a tunnel's, or a
// node's own nfs_addr), with MOUNT on the same port.
func nfsURL(port int, vol, path string) string {
	return fmt.Sprintf("nfs://127.0.0.1/%s/%s?nfsport=%d&mountport=%d", vol, strings.TrimPrefix(path, "/"), port, port)
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

// runTool runs one libnfs utility once, bounded by nfsTimeout.
func runTool(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), nfsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: no answer within %v (hung): %s", name, strings.Join(args, " "), nfsTimeout, strings.TrimSpace(out.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// nfsPut writes data to vol:path through an NFS port with one nfs-cp.
func nfsPut(t *testing.T, port int, vol, path string, data []byte) error {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runTool("nfs-cp", src, nfsURL(port, vol, path))
	return err
}

// nfsGet reads vol:path through an NFS port with one nfs-cp.
func nfsGet(t *testing.T, port int, vol, path string) ([]byte, error) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := runTool("nfs-cp", nfsURL(port, vol, path), dst); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

// nfsList lists the names in vol:dir through an NFS port with one nfs-ls,
// sorted, without . and ..
func nfsList(port int, vol, dir string) ([]string, error) {
	out, err := runTool("nfs-ls", nfsURL(port, vol, dir))
	if err != nil {
		return nil, err
	}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if n := f[len(f)-1]; n != "." && n != ".." {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// fileSet is what a test wrote: path → content.
type fileSet struct {
	mu    sync.Mutex
	files map[string][]byte
	order []string
	at    []time.Time // when each was written
}

func (s *fileSet) add(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string][]byte{}
	}
	s.files[path] = data
	s.order = append(s.order, path)
	s.at = append(s.at, time.Now())
}

// firstAfter returns when the first file written after t was, or the zero
// time.
func (s *fileSet) firstAfter(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.at {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

func (s *fileSet) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

func (s *fileSet) get(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

// checkThrough reads every file back through an NFS port and compares.
func (s *fileSet) checkThrough(t *testing.T, port int, vol string) {
	t.Helper()
	for _, p := range s.paths() {
		got, err := nfsGet(t, port, vol, p)
		if err != nil {
			t.Errorf("read %s back through port %d: %v", p, port, err)
			continue
		}
		if want := s.get(p); !bytes.Equal(got, want) {
			t.Errorf("%s read back through port %d: %d bytes sha256 %s, want %d bytes sha256 %s",
				p, port, len(got), sum(got), len(want), sum(want))
		}
	}
}

// checkOnNodes requires every file on every given node, from its own state
// (FileSum with local=1).
func (s *fileSet) checkOnNodes(t *testing.T, vol string, members []*Member) {
	t.Helper()
	for _, m := range members {
		for _, p := range s.paths() {
			got, err := m.FileSum(vol, p)
			if want := sum(s.get(p)); err != nil || got != want {
				t.Errorf("%s on %s: sha256 %q (err %v), want %s", p, m.ID, got, err, want)
			}
		}
	}
}

// copyLoop writes files /<prefix>NNN of size bytes through an NFS port, one
// nfs-cp each, in order, until n have been tried or stop is closed (nil:
// never). A failed nfs-cp is recorded as a client error and not retried.
// onWritten (may be nil) is called after each file written.
type copyLoop struct {
	t      *testing.T
	prefix string
	files  fileSet

	mu   sync.Mutex
	errs []string
	done chan struct{}
}

func startCopyLoop(t *testing.T, port int, vol, prefix string, n, size int, stop <-chan struct{}, onWritten func(i int)) *copyLoop {
	l := &copyLoop{t: t, prefix: prefix, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; i < n; i++ {
			select {
			case <-stop:
				return
			default:
			}
			path := fmt.Sprintf("/%s%03d", prefix, i)
			data := content(vol+":"+path+":"+prefix, size)
			start := time.Now()
			if err := nfsPut(t, port, vol, path, data); err != nil {
				l.mu.Lock()
				l.errs = append(l.errs, fmt.Sprintf("%s (started %s, %v): %v", path, start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
				l.mu.Unlock()
				continue
			}
			l.files.add(path, data)
			if onWritten != nil {
				onWritten(i)
			}
		}
	}()
	return l
}

// wait waits for the loop to end and returns the client errors it met.
func (l *copyLoop) wait(timeout time.Duration) []string {
	l.t.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.t.Fatalf("the nfs-cp loop %s did not finish within %v", l.prefix, timeout)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// written returns how many files the loop has written.
func (l *copyLoop) written() int { return len(l.files.paths()) }

// heldConn is one NFS client connection through a tunnel kept open across a
// fail-over, as a mounted kernel client keeps it: it sends NFS NULL calls
// and reads their replies.
type heldConn struct {
	c   net.Conn
	r   *bufio.Reader
	xid uint32
}

func dialHeld(t *testing.T, port int) *heldConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the tunnel on %d: %v", port, err)
	}
	t.Cleanup(func() { c.Close() })
	return &heldConn{c: c, r: bufio.NewReader(c), xid: 0x4b45454c}
}

// null sends NFSv3 NULL and waits for its reply.
func (h *heldConn) null(timeout time.Duration) error {
	h.xid++
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0x80000000|40)
	for _, w := range []uint32{h.xid, 0 /* CALL */, 2 /* rpcvers */, 100003 /* NFS */, 3, 0 /* NULL */, 0, 0 /* cred */, 0, 0 /* verf */} {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	_ = h.c.SetDeadline(time.Now().Add(timeout))
	defer h.c.SetDeadline(time.Time{})
	if _, err := h.c.Write(b); err != nil {
		return fmt.Errorf("send NULL: %w", err)
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(h.r, hdr[:]); err != nil {
			return fmt.Errorf("read NULL reply: %w", err)
		}
		rec := make([]byte, binary.BigEndian.Uint32(hdr[:])&^0x80000000)
		if _, err := io.ReadFull(h.r, rec); err != nil {
			return fmt.Errorf("read NULL reply: %w", err)
		}
		if len(rec) < 24 || binary.BigEndian.Uint32(rec) != h.xid {
			continue // an older call's reply
		}
		// xid, REPLY, MSG_ACCEPTED, verifier (flavor, empty body), SUCCESS
		if binary.BigEndian.Uint32(rec[4:]) != 1 || binary.BigEndian.Uint32(rec[8:]) != 0 || binary.BigEndian.Uint32(rec[20:]) != 0 {
			return fmt.Errorf("NULL reply is not a success: % x", rec)
		}
		return nil
	}
}

// pauseAndWait stops the member with SIGSTOP and waits until every thread
// of its process is stopped (the signal is delivered asynchronously).
func pauseAndWait(t *testing.T, m *Member) {
	t.Helper()
	m.Pause()
	pid := m.PID()
	waitFor(t, 5*time.Second, fmt.Sprintf("%s (pid %d) to be stopped", m.ID, pid), func() (bool, string) {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return false, fmt.Sprintf("no tasks: %v", err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				return false, err.Error()
			}
			// pid (comm) state …: the state follows the last ')'.
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
				return false, task + ": " + s[:min(len(s), 60)]
			}
		}
		return true, ""
	})
}
