package e2e

// The e2e framework, after etcd's tests/framework/e2e: TestMain builds the
// keel binary once into a temporary directory; startCluster makes a cluster
// with `keel init` on free loopback ports and runs one `keel serve` process
// per node, each logging to nodes/<id>/keel.log. Members can be killed
// (SIGKILL), stopped (SIGTERM), paused (SIGSTOP/SIGCONT) and restarted. When
// a test fails the tail of every node's log is printed; t.Cleanup kills
// every process the test started.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/testkit"
	"keel/internal/tlsutil"
)

// keelBin is the keel binary built by TestMain ("" in -short mode).
var keelBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips: see requireBinary
	}
	os.Exit(testkit.RunWithKeel(m, &keelBin))
}

func requireBinary(t *testing.T) {
	t.Helper()
	if keelBin == "" {
		t.Skip("e2e tests run keel processes; skipped in -short mode")
	}
}

// Shape is the make-up of a test cluster.
type Shape struct {
	Data    int  // data nodes, named n1, n2, …
	Witness bool // add a witness named w1
	Fast    bool // lower raft timings: heartbeat and election 500ms, lease 250ms
	Steady  bool // raise raft timings (2s, lease 1s): only a real disturbance moves leadership

	InitArgs []string // more arguments for keel init
}

// Cluster is a cluster made by `keel init` in a temporary directory.
type Cluster struct {
	t       *testing.T
	Dir     string
	ID      string
	Members []*Member
	Client  *cluster.Client // the CLI's client.yaml identity
	Layout  *config.Layout
}

// Member is one node of a Cluster and its current `keel serve` process.
type Member struct {
	c         *Cluster
	ID        string
	Role      string
	Dir       string // nodes/<id>
	Config    string // nodes/<id>/node.yaml
	Log       string // nodes/<id>/keel.log, appended to by every start
	RaftAddr  string
	AdminAddr string
	NFSAddr   string // data nodes
	proc      *proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startCluster makes a cluster of shape s, starts every node and waits for
// a leader.
func startCluster(t *testing.T, s Shape) *Cluster {
	t.Helper()
	c := initCluster(t, s)
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	return c
}

// initCluster runs `keel init` for shape s on free loopback ports, without
// starting anything.
func initCluster(t *testing.T, s Shape) *Cluster {
	t.Helper()
	requireBinary(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	lay, err := testkit.InitCluster(t, keelBin, dir, s.Data, s.Witness, s.InitArgs...)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: lay.Dir, ID: lay.ClusterID, Layout: lay}
	t.Cleanup(c.cleanup) // after t.TempDir: runs before the directory is removed
	for _, id := range lay.NodeIDs {
		cfg, err := config.Load(lay.NodeConfigs[id])
		if err != nil {
			t.Fatalf("load %s: %v", lay.NodeConfigs[id], err)
		}
		m := &Member{c: c, ID: id, Role: cfg.Node.Role, Dir: lay.NodeDir(id), Config: lay.NodeConfigs[id],
			Log: filepath.Join(lay.NodeDir(id), "keel.log"), RaftAddr: cfg.Node.RaftAddr, AdminAddr: cfg.Node.AdminAddr,
			NFSAddr: cfg.Node.NFSAddr}
		switch {
		case s.Fast:
			editYAML(t, m.Config, setFastRaft)
		case s.Steady:
			editYAML(t, m.Config, setSteadyRaft)
		}
		c.Members = append(c.Members, m)
	}
	cc, err := config.LoadClient(lay.ClientConfig)
	if err != nil {
		t.Fatalf("load client.yaml: %v", err)
	}
	if c.Client, err = cluster.NewClient(cc); err != nil {
		t.Fatalf("admin client: %v", err)
	}
	return c
}

// setFastRaft lowers a node.yaml's raft timings to keep failover tests fast.
func setFastRaft(doc map[string]any) {
	r := section(doc, "raft")
	r["heartbeat_timeout"] = "500ms"
	r["election_timeout"] = "500ms"
	r["leader_lease_timeout"] = "250ms"
}

// setSteadyRaft raises a node.yaml's raft timings, so that a loaded test
// machine does not move leadership on its own.
func setSteadyRaft(doc map[string]any) {
	r := section(doc, "raft")
	r["heartbeat_timeout"] = "2s"
	r["election_timeout"] = "2s"
	r["leader_lease_timeout"] = "1s"
}

func (c *Cluster) cleanup() {
	if c.t.Failed() {
		c.DumpLogs()
	}
	for _, m := range c.Members {
		m.kill()
	}
	if keep := os.Getenv("KEEL_E2E_KEEP"); keep != "" && (c.t.Failed() || os.Getenv("KEEL_E2E_KEEP_ALL") != "") {
		// Keep the failed (or with KEEL_E2E_KEEP_ALL, every) cluster's
		// directory (configs, logs, data) for study.
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_")+"-"+c.ID)
		if out, err := exec.Command("cp", "-a", c.Dir, dst).CombinedOutput(); err != nil {
			c.t.Logf("KEEL_E2E_KEEP: copy %s: %v %s", c.Dir, err, out)
		} else {
			c.t.Logf("KEEL_E2E_KEEP: cluster directory kept in %s", dst)
		}
	}
	if c.Client != nil {
		c.Client.Close()
	}
}

// DumpLogs prints the last lines of every node's log.
func (c *Cluster) DumpLogs() {
	for _, m := range c.Members {
		c.t.Logf("--- last lines of %s (%s) ---\n%s", m.ID, m.Log, tailFile(m.Log, 60))
	}
}

// Member returns the member with id.
func (c *Cluster) Member(id string) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	c.t.Fatalf("no member %q in the cluster", id)
	return nil
}

// DataMembers returns the data nodes.
func (c *Cluster) DataMembers() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Role == config.RoleData {
			out = append(out, m)
		}
	}
	return out
}

// StartAll starts every member and waits until each answers on its admin
// port.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for _, m := range c.Members {
		m.start()
	}
	for _, m := range c.Members {
		m.waitUp(20*time.Second, 3)
	}
}

// Status is the cluster status as `keel status` computes it.
func (c *Cluster) Status() cluster.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Client.Status(ctx, 2*time.Second)
}

// WaitLeader waits until the cluster reports a leader other than not (""
// for any) and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration, not string) *Member {
	c.t.Helper()
	var leader string
	// A witness that wins an election hands leadership on at once, so a
	// witness leader is not the active node the callers want.
	waitFor(c.t, timeout, "a data-node leader other than "+fmt.Sprintf("%q", not), func() (bool, string) {
		st := c.Status()
		leader = st.Leader
		return leader != "" && leader != not && c.Member(leader).Role != config.RoleWitness, fmt.Sprintf("leader %q term %d", st.Leader, st.Term)
	})
	return c.Member(leader)
}

// Start starts the member's `keel serve` and waits until its admin API
// answers.
func (m *Member) Start() {
	m.c.t.Helper()
	m.start()
	m.waitUp(20*time.Second, 3)
}

// Restart stops the member (SIGTERM) if it runs, then starts it again.
func (m *Member) Restart() {
	m.c.t.Helper()
	if m.Running() {
		m.Stop()
	}
	m.Start()
}

func (m *Member) start() {
	t := m.c.t
	t.Helper()
	if m.Running() {
		t.Fatalf("node %s is already running", m.ID)
	}
	f, err := os.OpenFile(m.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n=== e2e %s: starting keel serve --config %s\n", time.Now().Format(time.RFC3339Nano), m.Config)
	cmd := exec.Command(keelBin, "serve", "--config", m.Config)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", m.ID, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	m.proc = p
}

// waitUp waits until the member answers GET /v1/status. A node whose port
// was taken in the meantime (the log says "address already in use") is
// started again, up to tries times in all.
func (m *Member) waitUp(timeout time.Duration, tries int) {
	t := m.c.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		if !m.Running() {
			log := tailFile(m.Log, 20)
			if tries > 1 && strings.Contains(log, "address already in use") {
				time.Sleep(time.Second)
				m.start()
				tries--
				continue
			}
			t.Fatalf("node %s exited while starting (%v); end of its log:\n%s", m.ID, m.proc.err, log)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := m.c.Client.NodeStatus(ctx, m.AdminAddr)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node %s did not answer on %s within %v", m.ID, m.AdminAddr, timeout)
}

// Running reports whether the member's process is alive (paused counts).
func (m *Member) Running() bool {
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.done:
		return false
	default:
		return true
	}
}

// PID returns the process id of the member's current process.
func (m *Member) PID() int { return m.proc.cmd.Process.Pid }

func (m *Member) signal(sig syscall.Signal) {
	if m.Running() {
		_ = m.proc.cmd.Process.Signal(sig)
	}
}

// Kill9 kills the member with SIGKILL and waits for it to be gone.
func (m *Member) Kill9() {
	m.c.t.Helper()
	if !m.Running() {
		m.c.t.Fatalf("kill -9 %s: not running", m.ID)
	}
	m.kill()
}

func (m *Member) kill() {
	if !m.Running() {
		return
	}
	m.signal(syscall.SIGKILL)
	select {
	case <-m.proc.done:
	case <-time.After(10 * time.Second):
		m.c.t.Errorf("node %s (pid %d) still alive 10s after SIGKILL", m.ID, m.PID())
	}
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit (status 0).
func (m *Member) Stop() {
	t := m.c.t
	t.Helper()
	if !m.Running() {
		t.Fatalf("stop %s: not running", m.ID)
	}
	m.signal(syscall.SIGTERM)
	select {
	case <-m.proc.done:
		if m.proc.err != nil {
			t.Errorf("node %s exited with %v after SIGTERM; want a clean exit", m.ID, m.proc.err)
		}
	case <-time.After(20 * time.Second):
		m.kill()
		t.Fatalf("node %s did not exit within 20s of SIGTERM", m.ID)
	}
}

// Pause stops the member's process with SIGSTOP; Resume continues it.
func (m *Member) Pause()  { m.signal(syscall.SIGSTOP) }
func (m *Member) Resume() { m.signal(syscall.SIGCONT) }

// Status asks the member for its own status.
func (m *Member) Status() (cluster.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.c.Client.NodeStatus(ctx, m.AdminAddr)
}

// Hash returns the member's state digest and applied index.
func (m *Member) Hash() (cluster.StateHash, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.c.Client.Hash(ctx, m.AdminAddr)
}

// FileSum returns the sha256 of vol:path in the member's own state.
func (m *Member) FileSum(vol, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.c.Client.FileSum(ctx, m.AdminAddr, vol, path)
}

// waitFor polls cond every 100 ms until it holds, failing the test after
// timeout with cond's last description of what it saw.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	maxIter := int(timeout/(100*time.Millisecond)) + 2
	for i := 0; i < maxIter; i++ {
		ok, desc := cond()
		if ok {
			return
		}
		last = desc
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last seen: %s", time.Since(start).Round(time.Millisecond), what, last)
}

// cmdResult is the outcome of a keel command run to completion.
type cmdResult struct {
	Stdout, Stderr string
	Code           int // -1 if it was killed at the timeout
}

// runKeel runs the keel binary with args and waits at most timeout.
func runKeel(t *testing.T, timeout time.Duration, args ...string) cmdResult {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBin, args...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cmdResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.Code = -1
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run keel %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// freePorts finds n distinct free ports on 127.0.0.1, never handing out
// the same port twice in one run.
func freePorts(t *testing.T, n int) []int { return testkit.FreePorts(t, n) }

// listening reports whether something accepts TCP connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// editYAML rewrites a YAML file through fn (comments are dropped).
func editYAML(t *testing.T, path string, fn func(doc map[string]any)) { testkit.EditYAML(t, path, fn) }

// section returns doc[key] as a mapping, making it if missing.
func section(doc map[string]any, key string) map[string]any { return testkit.Section(doc, key) }

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// content returns size bytes unique to tag: the tag, then a pseudo-random
// stream seeded by it.
func content(tag string, size int) []byte {
	seed := sha256.Sum256([]byte(tag))
	rng := rand.NewChaCha8(seed)
	b := make([]byte, size)
	_, _ = rng.Read(b)
	copy(b, tag+"\n")
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// ack is a write the cluster acknowledged.
type ack struct {
	Path string
	Sum  string // sha256 of the content written
	At   time.Time
}

// ackLog records acknowledged writes from concurrent writers.
type ackLog struct {
	mu   sync.Mutex
	acks []ack
}

func (l *ackLog) add(path, sum string) {
	l.mu.Lock()
	l.acks = append(l.acks, ack{Path: path, Sum: sum, At: time.Now()})
	l.mu.Unlock()
}

func (l *ackLog) all() []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ack(nil), l.acks...)
}

// countSince returns how many writes were acknowledged after t.
func (l *ackLog) countSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.acks {
		if a.At.After(t) {
			n++
		}
	}
	return n
}

// writer writes files vol:/<prefix>/f<i> with unique contents until its
// context ends, recording every acknowledged write.
type writer struct {
	client  *cluster.Client
	vol     string
	prefix  string
	size    func(i int) int
	retries int           // attempts per file beyond the first; 0: move on after an error
	timeout time.Duration // per attempt
	acks    *ackLog

	mu     sync.Mutex
	errs   []timedErr
	gaveUp []string // files never acknowledged although the writer was not told to stop
}

type timedErr struct {
	At  time.Time
	Err error
}

func (w *writer) run(ctx context.Context) {
	for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
		path := fmt.Sprintf("/%s/f%05d", w.prefix, i)
		data := content(w.vol+":"+path, w.size(i))
		acked := false
		for attempt := 0; attempt <= w.retries && ctx.Err() == nil; attempt++ {
			actx, cancel := context.WithTimeout(ctx, w.timeout)
			err := w.client.PutFile(actx, w.vol, path, data, true)
			cancel()
			if err == nil {
				w.acks.add(path, sum(data))
				acked = true
				break
			}
			if ctx.Err() == nil {
				w.mu.Lock()
				w.errs = append(w.errs, timedErr{At: time.Now(), Err: fmt.Errorf("put %s (attempt %d): %w", path, attempt+1, err)})
				w.mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !acked && ctx.Err() == nil {
			w.mu.Lock()
			w.gaveUp = append(w.gaveUp, path)
			w.mu.Unlock()
		}
	}
}

// errorsBefore returns the errors the writer met before t.
func (w *writer) errorsBefore(t time.Time) []timedErr {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []timedErr
	for _, e := range w.errs {
		if e.At.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func (w *writer) abandoned() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.gaveUp...)
}

// createVolume creates a volume through the admin client.
func (c *Cluster) createVolume(name string, size uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client.CreateVolume(ctx, name, size); err != nil {
		c.t.Fatalf("create volume %s: %v", name, err)
	}
}

// httpClient returns a plain HTTPS client with the cluster's client
// certificate, for requests to one given node (no leader-following, no
// retries).
func (c *Cluster) httpClient() *http.Client {
	c.t.Helper()
	cc, err := config.LoadClient(c.Layout.ClientConfig)
	if err != nil {
		c.t.Fatal(err)
	}
	ca, cert, key, err := tlsutil.LoadFiles(cc.TLS.CA, cc.TLS.Cert, cc.TLS.Key)
	if err != nil {
		c.t.Fatal(err)
	}
	tc, err := tlsutil.ClientConfig(ca, cert, key, c.ID)
	if err != nil {
		c.t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc}
	c.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
