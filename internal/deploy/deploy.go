// Package deploy is `keel deploy`: from an operator's machine, over SSH, it
// turns a set of fresh machines into a running cluster (the seed's
// configure script): it copies this keel binary, makes the cluster on the
// first data host (keel init), joins the others with tokens (keel join),
// runs every node and tunnel under systemd or, without it, as background
// processes with a pid file, creates the volumes and checks the result the
// seed's way: a file written through one client's tunnel is read through
// another's. Every step looks before it acts, so running it again converges
// and a new host in the lists is joined.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/join"
)

// Ports every deployed node uses.
const (
	RaftPort  = 7401
	AdminPort = 7501
	NFSPort   = 2049
)

// Volume is a volume to create.
type Volume struct {
	Name string
	Size uint64
}

// Options configure a deployment.
type Options struct {
	SSHKey     string
	KnownHosts string // default ~/.ssh/known_hosts
	Insecure   bool   // do not check host keys
	User       string // default root
	Data       []string
	Witness    []string
	Clients    []string
	Volumes    []Volume
	LocalDir   string // where the operator's client.yaml goes
	RemoteDir  string // on every host; default /var/lib/keel
	RemoteBin  string // default /usr/local/bin/keel
	Binary     string // the keel binary to copy; default this one
	Listen     string // tunnels' local NFS address; default 127.0.0.1:2049
	Out        io.Writer
}

func (o *Options) defaults() error {
	if o.User == "" {
		o.User = "root"
	}
	if o.RemoteDir == "" {
		o.RemoteDir = "/var/lib/keel"
	}
	if o.RemoteBin == "" {
		o.RemoteBin = "/usr/local/bin/keel"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:2049"
	}
	if o.LocalDir == "" {
		o.LocalDir = "keel-deploy"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Binary = exe
	}
	switch {
	case o.SSHKey == "":
		return errors.New("deploy: --ssh-key KEY is needed (the private key whose public half is in each host's authorized_keys)")
	case len(o.Data) == 0:
		return errors.New("deploy: name the data hosts with --data host1,host2[,host3]")
	case len(o.Witness) > 1:
		return errors.New("deploy: at most one --witness")
	case len(o.Data) == 2 && len(o.Witness) == 0:
		return errors.New("deploy: two data hosts need a third voter: add --witness HOST or a third --data host")
	case len(o.Data) == 1 && len(o.Witness) == 1:
		return errors.New("deploy: a witness beside a single data host adds nothing: add a second data host")
	}
	for _, p := range []string{o.RemoteDir, o.RemoteBin} {
		if !filepath.IsAbs(p) || strings.ContainsAny(p, " '\"$\\") {
			return fmt.Errorf("deploy: remote path %q must be absolute, without spaces or quotes", p)
		}
	}
	return nil
}

// host is one host and what deploy learned and did there.
type host struct {
	Host
	r       *remote
	systemd bool
	binSum  string
	upgrade bool // the binary was replaced: restart what runs
	nodeID  string
	cluster string
	client  bool // client.yaml present
}

// deployer is one run.
type deployer struct {
	o       Options
	mu      sync.Mutex
	hosts   []*host
	start   time.Time
	binSum  string
	binary  []byte
	seed    *host
	client  *cluster.Client
	cluster string
	// clientToken lets the client hosts join.
	clientToken string
}

// Result sums up a run.
type Result struct {
	ClusterID string        `json:"cluster_id"`
	Took      time.Duration `json:"took_ns"`
	Nodes     []string      `json:"nodes"`
	Clients   []string      `json:"clients"`
	Verified  bool          `json:"verified"`
	Client    string        `json:"client_config"`
}

// StepError says which step failed on which host.
type StepError struct {
	Host, Step string
	Err        error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s: %s failed: %v\nfix it and run the same keel deploy again: finished steps are checked and skipped", e.Host, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Run deploys.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	d := &deployer{o: o, start: time.Now()}
	defer func() {
		for _, h := range d.hosts {
			if h.r != nil {
				h.r.close()
			}
		}
		if d.client != nil {
			d.client.Close()
		}
	}()
	for _, g := range []struct {
		list []string
		role string
	}{{o.Data, config.RoleData}, {o.Witness, config.RoleWitness}, {o.Clients, join.RoleClient}} {
		for _, s := range g.list {
			h, err := ParseHost(s, g.role, o.User)
			if err != nil {
				return nil, err
			}
			for _, x := range d.hosts {
				if x.Host.Host == h.Host && x.Port == h.Port {
					return nil, fmt.Errorf("deploy: host %s is named twice", s)
				}
			}
			d.hosts = append(d.hosts, &host{Host: h})
		}
	}
	b, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("deploy: read the keel binary: %w", err)
	}
	sum := sha256.Sum256(b)
	d.binary, d.binSum = b, hex.EncodeToString(sum[:])

	cfg, err := sshConfig(o.SSHKey, o.KnownHosts, o.Insecure, o.User)
	if err != nil {
		return nil, err
	}
	if err := d.each(func(h *host) error { return d.prepare(ctx, h, cfg) }); err != nil {
		return nil, err
	}
	if err := d.formCluster(ctx); err != nil {
		return nil, err
	}
	if err := d.volumes(ctx); err != nil {
		return nil, err
	}
	if err := d.tunnels(ctx); err != nil {
		return nil, err
	}
	verified, err := d.verify(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{ClusterID: d.cluster, Took: time.Since(d.start), Verified: verified, Client: filepath.Join(o.LocalDir, config.FileClientConfig)}
	for _, h := range d.hosts {
		if h.Role == join.RoleClient {
			res.Clients = append(res.Clients, h.Host.Host)
		} else {
			res.Nodes = append(res.Nodes, h.nodeID+"@"+h.Host.Host)
		}
	}
	return res, nil
}

// step prints one step's outcome.
func (d *deployer) step(h *host, what, outcome string, t0 time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	role := h.Role
	if h.nodeID != "" {
		role += " " + h.nodeID
	}
	fmt.Fprintf(d.o.Out, "%6.1fs  %-18s %-11s %-14s %s (%.1fs)\n", time.Since(d.start).Seconds(), h.Host.Host, role, what, outcome, time.Since(t0).Seconds())
}

// each runs f on every host in parallel and returns the first failure.
func (d *deployer) each(f func(h *host) error) error {
	errs := make([]error, len(d.hosts))
	var wg sync.WaitGroup
	for i, h := range d.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(h) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *deployer) nodeDir() string   { return d.o.RemoteDir + "/node" }
func (d *deployer) clientDir() string { return d.o.RemoteDir + "/client" }
func (d *deployer) nodeYAML() string  { return d.nodeDir() + "/" + config.FileNodeConfig }

// prepare connects, looks at the host and puts the binary there.
func (d *deployer) prepare(ctx context.Context, h *host, cfg *ssh.ClientConfig) error {
	t0 := time.Now()
	r, err := dial(ctx, h.Host, cfg)
	if err != nil {
		return &StepError{h.Spec, "ssh connect", err}
	}
	h.r = r
	d.step(h, "connect", "ok", t0)
	t0 = time.Now()
	const sep = "----- node.yaml -----"
	facts, err := r.run(fmt.Sprintf(`echo os=$(uname -s)/$(uname -m); [ -d /run/systemd/system ] && echo systemd=1; [ -f %[1]s ] && echo sum=$(sha256sum %[1]s | cut -d' ' -f1); [ -f %[3]s/client.yaml ] && echo client=1; [ -f %[2]s ] && echo node=1 && echo '%[4]s' && cat %[2]s; true`,
		d.o.RemoteBin, d.nodeYAML(), d.clientDir(), sep), nil)
	if err != nil {
		return &StepError{h.Spec, "inspect", err}
	}
	facts, nodeYAML, _ := strings.Cut(facts, sep+"\n")
	kv := map[string]string{}
	for _, l := range strings.Split(facts, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	if want := "Linux/" + unameArch(runtime.GOARCH); kv["os"] != want {
		return &StepError{h.Spec, "inspect", fmt.Errorf("the host is %s and this keel is built for %s: run keel deploy with a keel built for it (GOOS=linux GOARCH=...)", kv["os"], want)}
	}
	h.systemd, h.binSum, h.client = kv["systemd"] == "1", kv["sum"], kv["client"] == "1"
	if kv["node"] == "1" {
		out := nodeYAML
		var c struct {
			ClusterID string `yaml:"cluster_id"`
			Node      struct {
				ID   string `yaml:"id"`
				Role string `yaml:"role"`
			} `yaml:"node"`
		}
		if err := yaml.Unmarshal([]byte(out), &c); err != nil {
			return &StepError{h.Spec, "inspect", fmt.Errorf("%s: %w", d.nodeYAML(), err)}
		}
		if c.Node.Role != h.Role {
			return &StepError{h.Spec, "inspect", fmt.Errorf("this host already runs %s node %s of cluster %s; deploy names it a %s: keep its role, or `keel leave` it and remove %s first", c.Node.Role, c.Node.ID, c.ClusterID, h.Role, d.o.RemoteDir)}
		}
		h.nodeID, h.cluster = c.Node.ID, c.ClusterID
	}
	mode := "background processes"
	if h.systemd {
		mode = "systemd"
	}
	state := "new"
	if h.nodeID != "" {
		state = "node " + h.nodeID + " of " + h.cluster
	} else if h.client {
		state = "tunnel client"
	}
	d.step(h, "inspect", kv["os"]+", "+mode+", "+state, t0)
	t0 = time.Now()
	if h.binSum == d.binSum {
		d.step(h, "binary", "up to date", t0)
		return nil
	}
	dir := filepath.Dir(d.o.RemoteBin)
	if _, err := r.run(fmt.Sprintf("mkdir -p %s && cat > %[2]s.new && chmod 755 %[2]s.new && mv %[2]s.new %[2]s", dir, d.o.RemoteBin), bytes.NewReader(d.binary)); err != nil {
		return &StepError{h.Spec, "copy binary", err}
	}
	h.upgrade = h.binSum != ""
	d.step(h, "binary", fmt.Sprintf("copied %.1f MiB to %s", float64(len(d.binary))/(1<<20), d.o.RemoteBin), t0)
	return nil
}

func unameArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goarch
}

// formCluster makes the cluster on the first data host if there is none,
// joins every node host that is not a member, and waits until all vote.
func (d *deployer) formCluster(ctx context.Context) error {
	ids := map[string]bool{}
	clusters := map[string]bool{}
	for _, h := range d.hosts {
		if h.nodeID != "" {
			ids[h.nodeID] = true
			clusters[h.cluster] = true
			if d.seed == nil && h.Role == config.RoleData {
				d.seed = h
			}
		}
	}
	if len(clusters) > 1 {
		var list []string
		for _, h := range d.hosts {
			if h.nodeID != "" {
				list = append(list, h.Host.Host+": "+h.cluster)
			}
		}
		return fmt.Errorf("deploy: the hosts belong to different clusters (%s): deploy one cluster at a time", strings.Join(list, ", "))
	}
	nextID := func(prefix string) string {
		for i := 1; ; i++ {
			id := prefix + strconv.Itoa(i)
			if !ids[id] {
				ids[id] = true
				return id
			}
		}
	}
	if d.seed == nil {
		if len(clusters) == 1 {
			return errors.New("deploy: only the witness has a cluster: its data hosts are gone; recover them (docs/deploy.md) before deploying")
		}
		h := d.hostsOf(config.RoleData)[0]
		t0 := time.Now()
		h.nodeID = nextID("n")
		admin := d.o.RemoteDir + "/admin"
		cmd := fmt.Sprintf("mkdir -p %[1]s && rm -rf %[2]s && %[3]s init --dir %[2]s --node %[4]s=%[5]s --json > /dev/null && mv %[2]s/nodes/%[4]s %[6]s && sed -n 's/^cluster_id: *//p' %[7]s",
			d.o.RemoteDir, admin, d.o.RemoteBin, h.nodeID, h.Host.Host, d.nodeDir(), d.nodeYAML())
		out, err := h.r.run(cmd, nil)
		if err != nil {
			return &StepError{h.Spec, "keel init", err}
		}
		h.cluster = strings.TrimSpace(out)
		d.step(h, "keel init", "cluster "+h.cluster+" made; CA copy in "+admin, t0)
		d.seed = h
	}
	d.cluster = d.seed.cluster
	// Start (or restart after an upgrade) the nodes that exist.
	var existing []*host
	for _, h := range d.nodeHosts() {
		if h.nodeID != "" {
			existing = append(existing, h)
		}
	}
	if err := d.eachOf(existing, func(h *host) error { return d.startNode(h, "") }); err != nil {
		return err
	}
	nodeTok, clientTok, err := d.tokens()
	if err != nil {
		return err
	}
	if err := d.localClient(ctx, clientTok); err != nil {
		return err
	}
	d.clientToken = clientTok
	seedAdmin := net.JoinHostPort(d.seed.Host.Host, strconv.Itoa(AdminPort))
	var joining []*host
	for _, h := range d.nodeHosts() {
		if h.nodeID == "" {
			prefix := "n"
			if h.Role == config.RoleWitness {
				prefix = "w"
			}
			h.nodeID = nextID(prefix)
			joining = append(joining, h)
		}
	}
	err = d.eachOf(joining, func(h *host) error {
		flag := ""
		if h.Role == config.RoleWitness {
			flag = " --witness"
		}
		cmd := fmt.Sprintf("%s join %s --token %s --id %s --host %s --no-start --dir %s --timeout 60s%s > /dev/null && ",
			d.o.RemoteBin, seedAdmin, nodeTok, h.nodeID, h.Host.Host, d.nodeDir(), flag)
		h.cluster = d.cluster
		return d.startNode(h, cmd)
	})
	if err != nil {
		return err
	}
	return d.waitVoters(ctx)
}

func (d *deployer) hostsOf(role string) []*host {
	var out []*host
	for _, h := range d.hosts {
		if h.Role == role {
			out = append(out, h)
		}
	}
	return out
}

func (d *deployer) nodeHosts() []*host {
	return append(d.hostsOf(config.RoleData), d.hostsOf(config.RoleWitness)...)
}

// startCmd is the shell command that makes sure a service runs: a systemd
// unit, or a background process with a pid file. restart restarts one that
// runs.
func (d *deployer) startCmd(h *host, kind, dir, args string, restart bool) string {
	if h.systemd {
		flag := "--config " + dir + "/" + config.FileNodeConfig
		if kind == "tunnel" {
			flag = "--tunnel " + dir + "/" + config.FileClientConfig + " --listen " + d.o.Listen
		}
		cmd := fmt.Sprintf("%s service install %s --binary %s", d.o.RemoteBin, flag, d.o.RemoteBin)
		if restart {
			cmd += " && systemctl restart keel-" + kind + ".service && echo restarted with the new binary"
		}
		return cmd
	}
	pid := dir + "/" + kind + ".pid"
	logf := dir + "/" + kind + ".log"
	stop := ""
	if restart {
		stop = fmt.Sprintf(`if [ -f %[1]s ] && kill -0 $(cat %[1]s) 2>/dev/null; then kill $(cat %[1]s); for i in $(seq 100); do kill -0 $(cat %[1]s) 2>/dev/null || break; sleep 0.2; done; fi; `, pid)
	}
	cmd := fmt.Sprintf(`cd %[1]s && %[2]sif [ -f %[3]s ] && kill -0 $(cat %[3]s) 2>/dev/null; then echo "running (pid $(cat %[3]s))"; else setsid nohup %[4]s %[5]s >> %[6]s 2>&1 < /dev/null & echo $! > %[3]s; echo "started in the background (pid $(cat %[3]s), log %[6]s)"; fi`,
		dir, stop, pid, d.o.RemoteBin, args, logf)
	return cmd
}

// startNode runs before (a join, or nothing) and then makes sure the node
// runs.
func (d *deployer) startNode(h *host, before string) error {
	t0 := time.Now()
	out, err := h.r.run(before+d.startCmd(h, "node", d.nodeDir(), "serve --config "+d.nodeYAML(), h.upgrade), nil)
	step := "start node"
	if before != "" {
		step = "join, start"
		out = "joined as " + h.Role + " " + h.nodeID + "; " + out
	}
	if err != nil {
		return &StepError{h.Spec, step, err}
	}
	h.upgrade = false
	d.step(h, step, strings.TrimSpace(out), t0)
	return nil
}

// tokens makes a node and a client token on the seed, valid 15 minutes.
func (d *deployer) tokens() (node, client string, err error) {
	t0 := time.Now()
	create := func(purpose string) string {
		return fmt.Sprintf("%s token create --config %s --purpose %s --ttl 15m --note 'keel deploy' --json", d.o.RemoteBin, d.nodeYAML(), purpose)
	}
	out, err := d.seed.r.run(create(join.PurposeNode)+" && "+create(join.PurposeClient), nil)
	if err != nil {
		return "", "", &StepError{d.seed.Spec, "token create", err}
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for _, dst := range []*string{&node, &client} {
		var t cluster.TokenInfo
		if err := dec.Decode(&t); err != nil {
			return "", "", &StepError{d.seed.Spec, "token create", err}
		}
		*dst = t.Token
	}
	d.step(d.seed, "tokens", "node and client join tokens (15 min)", t0)
	return node, client, nil
}

// localClient gives the operator's machine its client.yaml (once).
func (d *deployer) localClient(ctx context.Context, tok string) error {
	p := filepath.Join(d.o.LocalDir, config.FileClientConfig)
	if cc, err := config.LoadClient(p); err == nil && cc.ClusterID == d.cluster {
		c, err := cluster.NewClient(cc)
		if err == nil {
			d.client = c
			return nil
		}
	}
	t, err := join.Parse(tok)
	if err != nil {
		return err
	}
	name, _ := os.Hostname()
	name = "deploy-" + strings.Split(name, ".")[0]
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := join.Do(cctx, net.JoinHostPort(d.seed.Host.Host, strconv.Itoa(AdminPort)), t, join.Request{Role: join.RoleClient, ID: name})
	if err != nil {
		return &StepError{"this machine", "client certificate", err}
	}
	if _, err := join.WriteClientDir(d.o.LocalDir, resp); err != nil {
		return &StepError{"this machine", "client certificate", err}
	}
	cc, err := config.LoadClient(p)
	if err != nil {
		return err
	}
	d.client, err = cluster.NewClient(cc)
	return err
}

// waitVoters waits until every node host's node is a voter and a leader
// is known.
func (d *deployer) waitVoters(ctx context.Context) error {
	t0 := time.Now()
	var want []string
	for _, h := range d.nodeHosts() {
		want = append(want, h.nodeID)
	}
	sort.Strings(want)
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		st := d.client.Status(ctx, 3*time.Second)
		var voters []string
		for _, n := range st.Nodes {
			if n.Voter && n.Reachable {
				voters = append(voters, n.ID)
			}
		}
		sort.Strings(voters)
		last = fmt.Sprintf("leader %q, voters up %v", st.Leader, voters)
		ok := st.Leader != ""
		for _, id := range want {
			ok = ok && contains(voters, id)
		}
		if ok {
			fmt.Fprintf(d.o.Out, "%6.1fs  cluster %s: leader %s, voters %s (%.1fs)\n", time.Since(d.start).Seconds(), d.cluster, st.Leader, strings.Join(voters, ", "), time.Since(t0).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return &StepError{"cluster", "wait for every node to vote", fmt.Errorf("not within 90s; last seen %s: look at %s/node/node.log on the hosts missing", last, d.o.RemoteDir)}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// volumes creates (or grows) the volumes and exports them to the clients.
func (d *deployer) volumes(ctx context.Context) error {
	if len(d.o.Volumes) == 0 {
		return nil
	}
	have, err := d.client.Volumes(ctx)
	if err != nil {
		return &StepError{"cluster", "list volumes", err}
	}
	clients := []string{"127.0.0.1/32"}
	for _, h := range d.hostsOf(join.RoleClient) {
		ips, err := net.LookupHost(h.Host.Host)
		if err != nil {
			return &StepError{h.Spec, "export", fmt.Errorf("resolve %s: %w", h.Host.Host, err)}
		}
		for _, ip := range ips {
			if strings.Contains(ip, ":") {
				clients = append(clients, ip+"/128")
			} else {
				clients = append(clients, ip+"/32")
			}
		}
	}
	for _, v := range d.o.Volumes {
		t0 := time.Now()
		outcome := "exists"
		var found *cluster.VolumeInfo
		for i := range have {
			if have[i].Name == v.Name {
				found = &have[i]
			}
		}
		switch {
		case found == nil:
			if _, err := d.client.CreateVolume(ctx, v.Name, v.Size); err != nil {
				return &StepError{"cluster", "create volume " + v.Name, err}
			}
			outcome = "created"
		case found.SizeBytes < v.Size:
			if _, err := d.client.ResizeVolume(ctx, v.Name, v.Size); err != nil {
				return &StepError{"cluster", "grow volume " + v.Name, err}
			}
			outcome = "grown"
		case found.SizeBytes > v.Size:
			outcome = "exists, larger than asked (never shrunk by deploy)"
		}
		if _, err := d.client.SetExport(ctx, v.Name, cluster.ExportInfo{Clients: clients, Squash: "no_root_squash"}); err != nil {
			return &StepError{"cluster", "export volume " + v.Name, err}
		}
		fmt.Fprintf(d.o.Out, "%6.1fs  volume %s (%d bytes): %s; exported rw, no_root_squash, to %s (%.1fs)\n",
			time.Since(d.start).Seconds(), v.Name, v.Size, outcome, strings.Join(clients, " "), time.Since(t0).Seconds())
	}
	return nil
}

// tunnels gives every client host its certificate and runs its tunnel.
func (d *deployer) tunnels(ctx context.Context) error {
	clients := d.hostsOf(join.RoleClient)
	if len(clients) == 0 {
		return nil
	}
	seedAdmin := net.JoinHostPort(d.seed.Host.Host, strconv.Itoa(AdminPort))
	return d.eachOf(clients, func(h *host) error {
		t0 := time.Now()
		before, step := "", "start tunnel"
		if !h.client {
			before = fmt.Sprintf("%s tunnel join %s --token %s --name %s --dir %s --timeout 60s > /dev/null && ", d.o.RemoteBin, seedAdmin, d.clientToken, clientName(h), d.clientDir())
			step = "join, tunnel"
		}
		out, err := h.r.run(before+d.startCmd(h, "tunnel", d.clientDir(), "tunnel --cluster "+d.clientDir()+"/"+config.FileClientConfig+" --listen "+d.o.Listen, h.upgrade), nil)
		if err != nil {
			return &StepError{h.Spec, step, err}
		}
		if before != "" {
			out = "client certificate for " + clientName(h) + "; " + out
		}
		d.step(h, step, strings.TrimSpace(out), t0)
		return nil
	})
}

func clientName(h *host) string {
	return "client-" + strings.NewReplacer(".", "-", ":", "-").Replace(h.Host.Host)
}

func (d *deployer) eachOf(hosts []*host, f func(h *host) error) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(h) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verify is the seed's check: a file written through the first client's
// tunnel is read back through the last one's.
func (d *deployer) verify(ctx context.Context) (bool, error) {
	clients := d.hostsOf(join.RoleClient)
	if len(clients) == 0 || len(d.o.Volumes) == 0 {
		fmt.Fprintf(d.o.Out, "%6.1fs  verification skipped: it needs a --client host and a --volume\n", time.Since(d.start).Seconds())
		return false, nil
	}
	vol := d.o.Volumes[0].Name
	a, b := clients[0], clients[len(clients)-1]
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	content := "keel deploy check " + hex.EncodeToString(nonce) + " at " + time.Now().UTC().Format(time.RFC3339)
	name := ".keel-deploy-check"
	t0 := time.Now()
	// The tunnel may still be connecting: retry for 10 s on the host.
	retry := func(cmd string) string {
		return fmt.Sprintf("for i in $(seq 50); do %s 2>/tmp/.keel-verify.err && exit 0; sleep 0.2; done; cat /tmp/.keel-verify.err >&2; exit 1", cmd)
	}
	_, err := a.r.run(retry(fmt.Sprintf("%s tunnel verify --listen %s --volume %s --put %s --content %s", d.o.RemoteBin, d.o.Listen, vol, name, quote(content))), nil)
	if err != nil {
		return false, &StepError{a.Spec, "verify: write through the tunnel", err}
	}
	d.step(a, "verify write", fmt.Sprintf("/%s/%s through %s", vol, name, d.o.Listen), t0)
	t0 = time.Now()
	out, err := b.r.run(retry(fmt.Sprintf("%s tunnel verify --listen %s --volume %s --get %s", d.o.RemoteBin, d.o.Listen, vol, name)), nil)
	if err != nil {
		return false, &StepError{b.Spec, "verify: read through the tunnel", err}
	}
	if out != content {
		return false, &StepError{b.Spec, "verify", fmt.Errorf("read %q through the tunnel, %s wrote %q", out, a.Host.Host, content)}
	}
	d.step(b, "verify read", "the same content, written on "+a.Host.Host, t0)
	return true, nil
}
