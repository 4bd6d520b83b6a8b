package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/tunnel"
)

type upOptions struct {
	nodes      int
	witness    bool
	listen     string
	basePort   int
	volumeSize string
	restore    string
}

// upNode is one node process started by keel up.
type upNode struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	PID     int    `json:"pid"`
	Config  string `json:"config"`
	Log     string `json:"log"`
	Raft    string `json:"raft_addr"`
	Admin   string `json:"admin_addr"`
	NFS     string `json:"nfs_addr,omitempty"`
	cmd     *exec.Cmd
	exited  chan error
	stopped bool
}

func newUpCmd(g *globals) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local cluster, each node its own process, until Ctrl-C",
		Long: `up starts a local cluster in --dir (default ~/.keel): on the first run it creates
the certificates, the configs and a volume named "data"; later runs reuse the data.
Each node is a separate keel process logging to DIR/nodes/<id>/keel.log.
Ctrl-C stops every node cleanly.

  keel up                     # 3 data nodes
  keel up --nodes 3 --witness # 2 data nodes + 1 witness
  keel status                 # from another terminal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd.Context(), g, o, cmd.OutOrStdout()) },
	}
	cmd.Flags().IntVar(&o.nodes, "nodes", 3, "number of nodes (1 or 3)")
	cmd.Flags().BoolVar(&o.witness, "witness", false, "make the last node a witness (votes, keeps the log, holds no data)")
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:2049", "the stable NFS endpoint, following the active node (empty: none)")
	cmd.Flags().IntVar(&o.basePort, "base-port", 7400, "raft ports are base+1…, admin ports base+101…, NFS ports base+201…")
	cmd.Flags().StringVar(&o.volumeSize, "volume-size", "10GiB", "size of the volume \"data\" made on the first run")
	cmd.Flags().StringVar(&o.restore, "restore-from", "", "first run only: make the cluster from the newest state image in this backup URL (or URL@ID)")
	addJSON(cmd, g)
	return cmd
}

func runUp(ctx context.Context, g *globals, o *upOptions, out io.Writer) error {
	lay, err := config.LoadLayout(g.dir)
	switch {
	case errors.Is(err, config.ErrNoCluster):
		lay, err = createLocalCluster(ctx, g.dir, o)
	case err == nil && o.restore != "":
		return fmt.Errorf("--restore-from makes a new cluster, and %s already holds cluster %s: give an empty --dir", lay.Dir, lay.ClusterID)
	}
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the keel binary: %w", err)
	}
	var nodes []*upNode
	stopAll := func() {
		for _, n := range nodes {
			if !n.stopped {
				_ = n.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		deadline := time.After(15 * time.Second)
		for _, n := range nodes {
			if n.stopped {
				continue
			}
			select {
			case <-n.exited:
			case <-deadline:
				_ = n.cmd.Process.Kill()
				<-n.exited
			}
			n.stopped = true
		}
	}
	for _, id := range lay.NodeIDs {
		cfgPath := lay.NodeConfigs[id]
		cfg, err := config.Load(cfgPath)
		if err != nil {
			stopAll()
			return err
		}
		n := &upNode{ID: id, Role: cfg.Node.Role, Config: cfgPath, Raft: cfg.Node.RaftAddr, Admin: cfg.Node.AdminAddr, NFS: cfg.Node.NFSAddr,
			Log: filepath.Join(lay.NodeDir(id), "keel.log"), exited: make(chan error, 1)}
		logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			stopAll()
			return err
		}
		n.cmd = exec.Command(exe, "serve", "--config", cfgPath)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		// Own process group: a terminal's Ctrl-C reaches only keel up, which
		// then stops the nodes in order; if keel up dies, they get SIGTERM.
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := n.cmd.Start(); err != nil {
			logf.Close()
			stopAll()
			return fmt.Errorf("start node %s: %w", id, err)
		}
		logf.Close()
		n.PID = n.cmd.Process.Pid
		go func(n *upNode) { n.exited <- n.cmd.Wait() }(n)
		nodes = append(nodes, n)
	}
	defer stopAll()

	cc, err := config.LoadClient(lay.ClientConfig)
	if err != nil {
		return err
	}
	client, err := cluster.NewClient(cc)
	if err != nil {
		return err
	}
	defer client.Close()
	wait := time.Minute
	if o.restore != "" {
		wait = 30 * time.Minute // the data nodes fetch the state image first
	}
	leader, err := waitForLeader(ctx, client, nodes, wait)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "interrupted while starting; stopping every node")
			return nil
		}
		return err
	}
	vols, err := client.Volumes(ctx)
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	if len(vols) == 0 {
		sz, err := parseSize(o.volumeSize)
		if err != nil {
			return fmt.Errorf("--volume-size: %w", err)
		}
		if _, err := client.CreateVolume(ctx, "data", sz); err != nil {
			return fmt.Errorf("create the default volume: %w", err)
		}
		// A local development cluster: let this machine's root write.
		v, err := client.SetExport(ctx, "data", cluster.ExportInfo{Clients: []string{"127.0.0.0/8", "::1/128"},
			Squash: "no_root_squash", AnonUID: 65534, AnonGID: 65534})
		if err != nil {
			return fmt.Errorf("export the default volume: %w", err)
		}
		vols = append(vols, v)
	}
	// The stable NFS endpoint: a tunnel that follows the active node.
	listen := ""
	if o.listen != "" {
		tc, err := cluster.TLSConfig(cc)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("NFS endpoint --listen %s: %w (is an NFS server running there? pick another --listen)", o.listen, err)
		}
		listen = ln.Addr().String()
		t := tunnel.New(cc.Peers, tc, newLogger(io.Discard, "error", "text"))
		go func() { _ = t.Serve(ctx, ln) }()
	}
	if g.json {
		_ = printJSON(out, map[string]any{"cluster_id": lay.ClusterID, "dir": lay.Dir, "nodes": nodes, "volumes": vols,
			"client_config": lay.ClientConfig, "nfs": listen})
	} else {
		printUp(out, lay, nodes, vols, g.dir, listen, leader)
	}

	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping every node…")
			stopAll()
			fmt.Fprintln(out, "stopped")
			return nil
		default:
		}
		for _, n := range nodes {
			select {
			case err := <-n.exited:
				n.stopped = true
				n.exited <- err
				fmt.Fprintf(out, "node %s (pid %d) exited: %v; see %s\n", n.ID, n.PID, err, n.Log)
			default:
			}
		}
		alive := 0
		for _, n := range nodes {
			if !n.stopped {
				alive++
			}
		}
		if alive == 0 {
			return fmt.Errorf("every node has exited; see the logs in %s/nodes/*/keel.log", lay.Dir)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func createLocalCluster(ctx context.Context, dir string, o *upOptions) (*config.Layout, error) {
	if o.nodes != 1 && o.nodes != 3 {
		return nil, fmt.Errorf("--nodes %d: a local cluster has 1 node or 3 nodes (add --witness to make the third a witness)", o.nodes)
	}
	if o.witness && o.nodes != 3 {
		return nil, fmt.Errorf("--witness needs --nodes 3 (2 data nodes + 1 witness)")
	}
	spec := config.InitSpec{Dir: dir}
	if o.restore != "" {
		ref, err := resolveStateImage(ctx, o.restore)
		if err != nil {
			return nil, err
		}
		spec.RestoreFrom = ref
	}
	for i := 1; i <= o.nodes; i++ {
		role := config.RoleData
		if o.witness && i == o.nodes {
			role = config.RoleWitness
		}
		spec.Nodes = append(spec.Nodes, config.NodeSpec{ID: fmt.Sprintf("n%d", i), Role: role, Host: "127.0.0.1",
			RaftPort: o.basePort + i, AdminPort: o.basePort + 100 + i, NFSPort: o.basePort + 200 + i})
	}
	return config.Generate(spec)
}

func waitForLeader(ctx context.Context, c *cluster.Client, nodes []*upNode, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		st := c.Status(ctx, time.Second)
		if st.Leader != "" {
			return st.Leader, nil
		}
		for _, n := range nodes {
			select {
			case err := <-n.exited:
				n.stopped = true
				n.exited <- err
				tail, _ := os.ReadFile(n.Log)
				if len(tail) > 2000 {
					tail = tail[len(tail)-2000:]
				}
				return "", fmt.Errorf("node %s exited while starting (%v); end of %s:\n%s", n.ID, err, n.Log, tail)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("no leader after 60s; see the logs in %s", filepath.Dir(filepath.Dir(nodes[0].Log)))
}

func printUp(w io.Writer, lay *config.Layout, nodes []*upNode, vols []cluster.VolumeInfo, dir, listen, leader string) {
	fmt.Fprintf(w, "keel is up: cluster %s, %s, in %s\n\n", lay.ClusterID, plural(len(nodes), "node"), lay.Dir)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-4s %-8s pid %-7d raft %-16s admin https://%-16s nfs %-16s log %s\n", n.ID, n.Role, n.PID, n.Raft, n.Admin, n.NFS, n.Log)
	}
	fmt.Fprintln(w)
	for _, v := range vols {
		fmt.Fprintf(w, "  volume %-10s %s\n", v.Name, formatSize(v.SizeBytes))
	}
	if listen != "" {
		host, port, _ := net.SplitHostPort(listen)
		fmt.Fprintf(w, "\nNFS endpoint %s (follows the active node, now %s). Try:\n", listen, leader)
		fmt.Fprintf(w, "  nfs-ls 'nfs://%s/data?nfsport=%s&mountport=%s'            (Debian: libnfs-utils)\n", host, port, port)
		fmt.Fprintf(w, "  mount -t nfs -o vers=3,proto=tcp,port=%s,mountport=%s,nolock,hard %s:/data /mnt\n", port, port, host)
	}
	fmt.Fprintf(w, "Without an NFS client:  keel fs put FILE data:/FILE --dir %s\n\n", dir)
	fmt.Fprintf(w, "In another terminal:  keel status --dir %s\n", dir)
	fmt.Fprintln(w, "Ctrl-C stops every node.")
}

// plural gives "1 node", "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
