//go:build chaos

package chaos

import (
	"context"
	"fmt"
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
	"keel/internal/testkit/faultfs"
)

// A chaos cluster: every node's raft traffic to every other node goes
// through its own fault proxy (one per ordered pair, so that a link can be
// cut one way), and every node's admin port, which the tunnels and the
// other nodes use, through one more. The checkers talk to the nodes'
// real admin ports.
type chaosCluster struct {
	t      *testing.T
	lay    *config.Layout
	nodes  []*chaosNode
	client *cluster.Client // real admin addresses: status, hashes, file sums
	raft   map[[2]string]*testkit.FaultProxy
	admin  map[string]*testkit.FaultProxy
	// tunnelYAML is a client.yaml naming the admin proxies.
	tunnelYAML string
	tunnels    []*tunnelProc

	mu     sync.Mutex
	events []Event // kills, pauses, resumptions, for the serving check

	installKills int // install-crash faults whose kill landed during a snapshot install

	noDisks      error // why the data directories are not on faultfs (nil: they are; disks_test.go)
	powerLosses  int   // power-loss faults done
	droppedBytes int64 // unsynced bytes those power losses dropped
}

type chaosNode struct {
	c                            *chaosCluster
	id, role, cfg, log           string
	raftAddr, adminAddr, nfsAddr string
	dataDir                      string
	proc                         *testkit.Proc
	paused                       bool
	disk                         *faultfs.FS // the faultfs under dataDir; nil without faultfs
}

func (n *chaosNode) data() bool { return n.role == config.RoleData }

// newChaosCluster runs keel init for data nodes and a witness, puts the
// proxies in, lowers the snapshot threshold (restarted nodes then often
// need a snapshot install; so do the 1 MiB log segments), and starts every
// node.
func newChaosCluster(t *testing.T, data int, witness bool) *chaosCluster {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cluster")
	lay, err := testkit.InitCluster(t, keelBin, dir, data, witness)
	if err != nil {
		t.Fatal(err)
	}
	c := &chaosCluster{t: t, lay: lay, raft: map[[2]string]*testkit.FaultProxy{}, admin: map[string]*testkit.FaultProxy{}}
	for _, id := range lay.NodeIDs {
		cfg, err := config.Load(lay.NodeConfigs[id])
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &chaosNode{c: c, id: id, role: cfg.Node.Role, cfg: lay.NodeConfigs[id],
			log: filepath.Join(lay.NodeDir(id), "keel.log"), raftAddr: cfg.Node.RaftAddr, adminAddr: cfg.Node.AdminAddr, nfsAddr: cfg.Node.NFSAddr,
			dataDir: cfg.Node.DataDir})
	}
	for _, from := range c.nodes {
		c.admin[from.id] = testkit.NewFaultProxy(t, from.adminAddr)
		for _, to := range c.nodes {
			if from != to {
				c.raft[[2]string{from.id, to.id}] = testkit.NewFaultProxy(t, to.raftAddr)
			}
		}
	}
	for _, n := range c.nodes {
		testkit.EditYAML(t, n.cfg, func(doc map[string]any) {
			for _, p := range peersOf(t, doc) {
				id, _ := p["id"].(string)
				if id == n.id {
					continue
				}
				p["raft_addr"] = c.raft[[2]string{n.id, id}].Addr
				p["admin_addr"] = c.admin[id].Addr
			}
			r := testkit.Section(doc, "raft")
			r["snapshot_threshold"] = 256
			r["trailing_logs"] = 128
			r["snapshot_interval"] = "5s"
			// Small log segments: compaction then really drops entries
			// (whole segments only), so a node down for a few seconds
			// often needs a snapshot install.
			r["log_segment_size"] = "1MiB"
			testkit.Section(doc, "log")["format"] = "json"
		})
	}
	c.tunnelYAML = filepath.Join(dir, "tunnel-client.yaml")
	b, err := os.ReadFile(lay.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.tunnelYAML, b, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.EditYAML(t, c.tunnelYAML, func(doc map[string]any) {
		for _, p := range peersOf(t, doc) {
			id, _ := p["id"].(string)
			p["admin_addr"] = c.admin[id].Addr
		}
	})
	cc, err := config.LoadClient(lay.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = cluster.NewClient(cc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	c.mountDisks()
	for _, n := range c.nodes {
		n.start()
	}
	c.waitLeader(60 * time.Second)
	return c
}

func peersOf(t *testing.T, doc map[string]any) []map[string]any {
	peers, ok := doc["peers"].([]any)
	if !ok {
		t.Fatalf("peers is %T, want a list", doc["peers"])
	}
	var out []map[string]any
	for _, pe := range peers {
		p, ok := pe.(map[string]any)
		if !ok {
			t.Fatalf("a peer is %T, want a mapping", pe)
		}
		out = append(out, p)
	}
	return out
}

func (c *chaosCluster) cleanup() {
	for _, tp := range c.tunnels {
		_ = tp.proc.Kill()
	}
	for _, n := range c.nodes {
		if n.proc != nil {
			_ = n.proc.Kill()
		}
	}
	c.unmountDisks()
	if keep := os.Getenv("KEEL_CHAOS_KEEP"); keep != "" && c.t.Failed() {
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_")+"-"+c.lay.ClusterID)
		if out, err := exec.Command("cp", "-a", c.lay.Dir, dst).CombinedOutput(); err != nil {
			c.t.Logf("KEEL_CHAOS_KEEP: copy %s: %v %s", c.lay.Dir, err, out)
		} else {
			c.t.Logf("KEEL_CHAOS_KEEP: cluster directory kept in %s", dst)
		}
	}
	c.client.Close()
}

func (c *chaosCluster) note(node string, k EventKind) {
	c.mu.Lock()
	c.events = append(c.events, Event{Node: node, At: time.Now(), Kind: k})
	c.mu.Unlock()
}

func (c *chaosCluster) node(id string) *chaosNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %q", id)
	return nil
}

func (c *chaosCluster) dataNodes() []*chaosNode {
	var out []*chaosNode
	for _, n := range c.nodes {
		if n.data() {
			out = append(out, n)
		}
	}
	return out
}

func (n *chaosNode) start() {
	t := n.c.t
	t.Helper()
	p, err := testkit.StartProc(keelBin, n.log, "serve", "--config", n.cfg)
	if err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.proc, n.paused = p, false
}

func (n *chaosNode) kill() {
	if n.proc.Running() {
		if err := n.proc.Kill(); err != nil {
			n.c.t.Errorf("kill -9 %s: %v", n.id, err)
		}
		n.c.note(n.id, Killed)
	}
	n.paused = false
}

func (n *chaosNode) pause() {
	if n.proc.Running() && !n.paused {
		n.c.note(n.id, Paused) // noted first: from now on it serves nothing
		n.proc.Signal(syscall.SIGSTOP)
		n.paused = true
	}
}

func (n *chaosNode) resume() {
	if n.paused {
		n.proc.Signal(syscall.SIGCONT)
		n.c.note(n.id, Resumed)
		n.paused = false
	}
}

// ensureRunning starts a node that is not running and resumes a paused one.
func (n *chaosNode) ensureRunning() {
	n.resume()
	if !n.proc.Running() {
		n.start()
	}
}

// leader returns the id of the data node that leads now ("" if none).
func (c *chaosCluster) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := c.client.Status(ctx, time.Second)
	return st.Leader
}

func (c *chaosCluster) waitLeader(timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.leader(); l != "" && c.node(l).data() {
			return l
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("no data node leads within %v", timeout)
	return ""
}

// healAll ends every fault: links pass, disks are fast, paused nodes
// resume, dead nodes start.
func (c *chaosCluster) healAll() {
	for _, n := range c.nodes {
		if n.disk != nil {
			n.disk.SetFsyncDelay(0)
			n.disk.SetFull(false)
		}
	}
	for _, p := range c.raft {
		p.SetMode(testkit.Pass)
	}
	for _, p := range c.admin {
		p.SetMode(testkit.Pass)
	}
	for _, n := range c.nodes {
		n.ensureRunning()
	}
}

// exportData creates volume "data" and exports it to 127.0.0.0/8 without
// root squashing, with the CLI.
func (c *chaosCluster) exportData() {
	c.t.Helper()
	for _, args := range [][]string{
		{"volume", "create", "data", "--size", "1GiB"},
		{"volume", "export", "data", "--no-root-squash", "--clients", "127.0.0.0/8"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, keelBin, append(args, "--config", c.lay.ClientConfig)...).CombinedOutput()
		cancel()
		if err != nil {
			c.t.Fatalf("keel %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// tunnelProc is one `keel tunnel` process (a client machine's local NFS
// endpoint), which reaches the nodes through their admin proxies.
type tunnelProc struct {
	name, addr, log string
	proc            *testkit.Proc
}

func (c *chaosCluster) startTunnel(name string) *tunnelProc {
	c.t.Helper()
	ports := testkit.FreePorts(c.t, 2)
	tp := &tunnelProc{name: name, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), log: filepath.Join(c.lay.Dir, "tunnel-"+name+".log")}
	p, err := testkit.StartProc(keelBin, tp.log, "tunnel", "--cluster", c.tunnelYAML, "--listen", tp.addr,
		"--status-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err != nil {
		c.t.Fatal(err)
	}
	tp.proc = p
	c.tunnels = append(c.tunnels, tp)
	return tp
}
