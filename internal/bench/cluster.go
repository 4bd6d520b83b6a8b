package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

const (
	startTimeout = 60 * time.Second // for every node to be up and a leader elected
	stopTimeout  = 15 * time.Second // for a node to exit on SIGTERM before it is killed
)

// localCluster is a cluster of `keel serve` processes on loopback, each
// with its own directory under dir.
type localCluster struct {
	dir          string
	nodes        []*nodeProc
	client       *cluster.Client
	clientConfig string // client.yaml of the cluster
	leader       string // node id of the leader once started
}

// nodeProc is one running `keel serve`.
type nodeProc struct {
	id      string
	exe     string // the keel binary
	cfgPath string // its node.yaml
	nodeDir string
	dataDir string
	log     string
	env     []string // added to the environment
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
	killed  bool          // killed on purpose (kill9): its exit is no failure
}

// startCluster generates a cluster of n data nodes in dir on free loopback
// ports, starts a `exe serve` process per node and waits until every node
// answers and one leads. On failure it stops whatever it started.
func startCluster(ctx context.Context, exe, dir string, n int) (*localCluster, error) {
	return startClusterEnv(ctx, exe, dir, n, nil)
}

// startClusterEnv is startCluster with env added to the nodes' environment.
func startClusterEnv(ctx context.Context, exe, dir string, n int, env []string) (*localCluster, error) {
	lay, err := generate(dir, n)
	if err != nil {
		return nil, err
	}
	c := &localCluster{dir: dir}
	for _, id := range lay.NodeIDs {
		p, err := startNode(exe, id, lay.NodeConfigs[id], lay.NodeDir(id), env)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, p)
	}
	if err := c.connect(ctx, lay.ClientConfig); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// generate writes the certificates and configs of an n-data-node cluster,
// each node with a raft, an admin and an NFS port.
func generate(dir string, n int) (*config.Layout, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	spec := config.InitSpec{Dir: dir}
	for i := range n {
		spec.Nodes = append(spec.Nodes, config.NodeSpec{ID: fmt.Sprintf("n%d", i+1), Role: config.RoleData,
			Host: "127.0.0.1", RaftPort: ports[3*i], AdminPort: ports[3*i+1], NFSPort: ports[3*i+2]})
	}
	lay, err := config.Generate(spec)
	if err != nil {
		return nil, fmt.Errorf("bench: make the cluster: %w", err)
	}
	return lay, nil
}

// freePorts returns k distinct loopback TCP ports that were free a moment ago.
func freePorts(k int) ([]int, error) {
	var ports []int
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startNode starts `exe serve` for one node, logging (warnings and errors
// only, so that logging adds little to the node's disk writes) to
// nodeDir/keel.log.
func startNode(exe, id, cfgPath, nodeDir string, env []string) (*nodeProc, error) {
	p := &nodeProc{id: id, exe: exe, cfgPath: cfgPath, nodeDir: nodeDir, dataDir: filepath.Join(nodeDir, config.NodeDataDir),
		log: filepath.Join(nodeDir, "keel.log"), env: env, done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer logf.Close()
	p.cmd = exec.Command(exe, "serve", "--config", cfgPath, "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	// Own process group, so a terminal's Ctrl-C reaches only the bench, which
	// then stops the nodes; if the bench dies, they get SIGTERM.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start node %s: %w", id, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *nodeProc) pid() int { return p.cmd.Process.Pid }

func (p *nodeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes a node that exited, with the end of its log.
func (p *nodeProc) failure() error {
	tail, _ := os.ReadFile(p.log)
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	return fmt.Errorf("bench: node %s exited (%v); end of %s:\n%s", p.id, p.err, p.log, tail)
}

// connect makes the client and waits until every node answers and one of
// them leads.
func (c *localCluster) connect(ctx context.Context, clientConfig string) error {
	c.clientConfig = clientConfig
	cc, err := config.LoadClient(clientConfig)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.client, err = cluster.NewClient(cc); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if err := c.failed(); err != nil {
			return err
		}
		if st := c.client.Status(ctx, time.Second); st.Healthy && st.Leader != "" {
			c.leader = st.Leader
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: the cluster in %s had no leader with every node up after %s", c.dir, startTimeout)
}

// failed returns the failure of the first node that exited, if any; a node
// killed on purpose (kill9) has not failed.
func (c *localCluster) failed() error {
	for _, p := range c.nodes {
		if p.exited() && !p.killed {
			return p.failure()
		}
	}
	return nil
}

func (c *localCluster) pids() []int {
	out := make([]int, len(c.nodes))
	for i, p := range c.nodes {
		out[i] = p.pid()
	}
	return out
}

// node returns the process of node id, or nil.
func (c *localCluster) node(id string) *nodeProc {
	for _, p := range c.nodes {
		if p.id == id {
			return p
		}
	}
	return nil
}

// kill9 kills node id with SIGKILL, as a crash would (no shutdown, nothing
// flushed), and waits until it has exited.
func (c *localCluster) kill9(id string) error {
	p := c.node(id)
	if p == nil {
		return fmt.Errorf("bench: no node %q to kill", id)
	}
	if p.exited() {
		return p.failure()
	}
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("bench: kill -9 node %s: %w", id, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("bench: node %s (pid %d) still runs %s after SIGKILL", id, p.pid(), stopTimeout)
	}
}

// restart starts node id again, after kill9, from its config and data
// directory; its log goes on in the same file.
func (c *localCluster) restart(id string) error {
	for i, p := range c.nodes {
		if p.id != id {
			continue
		}
		if !p.exited() {
			return fmt.Errorf("bench: node %s still runs (pid %d)", id, p.pid())
		}
		np, err := startNode(p.exe, p.id, p.cfgPath, p.nodeDir, p.env)
		if err != nil {
			return err
		}
		c.nodes[i] = np
		return nil
	}
	return fmt.Errorf("bench: no node %q to restart", id)
}

// stop sends every node SIGTERM and waits for them, killing any that
// outlast stopTimeout.
func (c *localCluster) stop() {
	if c.client != nil {
		c.client.Close()
	}
	for _, p := range c.nodes {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(stopTimeout)
	for _, p := range c.nodes {
		select {
		case <-p.done:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// diskUsage sums the sizes of the files under a node's data directory by
// the directory they are in, cut to two levels (raft/wal, raft/snapshots,
// state).
func diskUsage(dataDir string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) { // removed while walking: a compaction or snapshot
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dataDir, filepath.Dir(path))
		out[topDirs(rel, 2)] += uint64(info.Size())
		return nil
	})
	return out, err
}

// topDirs keeps the first n elements of a relative directory path.
func topDirs(rel string, n int) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	return strings.Join(parts[:min(n, len(parts))], "/")
}
