package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/join"
	"keel/internal/node"
	"keel/internal/tlsutil"
)

// joinDir is where a joining machine writes its files: --dir if given,
// else /var/lib/keel (nodes) or /etc/keel (clients) as root, else under
// the home directory.
func joinDir(cmd *cobra.Command, g *globals, rootDir, userDir string) string {
	if f := cmd.Flag("dir"); (f != nil && f.Changed) || os.Getenv("KEEL_DIR") != "" {
		return g.dir
	}
	if os.Geteuid() == 0 {
		return rootDir
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, userDir)
	}
	return userDir
}

// localHost returns the address of this machine on the route to addr.
func localHost(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	h, _, err := net.SplitHostPort(c.LocalAddr().String())
	return h, err
}

// joinTarget reads a join's ADDRESS (port 7501 if none) and token.
func joinTarget(addr, token string) (string, join.Token, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "7501")
	}
	tok, err := join.Parse(token)
	return addr, tok, err
}

func defaultNodeID() string {
	h, _ := os.Hostname()
	h = strings.ToLower(strings.Split(h, ".")[0])
	var b strings.Builder
	for _, r := range h {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if s := strings.Trim(b.String(), "-"); s != "" && tlsutil.CheckNodeID(s) == nil {
		return s
	}
	return "node"
}

func newJoinCmd(g *globals) *cobra.Command {
	var (
		token, id, host              string
		witness, noStart             bool
		raftPort, adminPort, nfsPort int
		timeout                      time.Duration
		logLevel                     string
	)
	cmd := &cobra.Command{
		Use:   "join ADDRESS --token TOKEN [--witness]",
		Short: "Join this machine to a running cluster as a storage node (or witness)",
		Long: `join asks the cluster at ADDRESS (any node's admin address, host:7501) for this
machine's node certificate, authenticated by TOKEN (from keel init or keel token create),
after checking that the cluster's CA has the fingerprint the token carries. It then
writes node.yaml, the certificates and the cluster secret into --dir (default
/var/lib/keel as root) and runs the node, which catches up from the leader and becomes
a voter once it has.

  keel join 10.0.0.1:7501 --token keel-join.… --id n3
  keel join 10.0.0.1:7501 --token keel-join.… --witness --id w1 --no-start
  keel serve --config /var/lib/keel/node.yaml      # after --no-start, or under systemd`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, tok, err := joinTarget(args[0], token)
			if err != nil {
				return err
			}
			dir := joinDir(cmd, g, "/var/lib/keel", ".keel-node")
			cfgPath := filepath.Join(dir, config.FileNodeConfig)
			if _, err := os.Stat(cfgPath); err == nil {
				return fmt.Errorf("%s exists: this machine has joined already; run `keel serve --config %s`, or `keel leave --config %s` and delete %s to join afresh", cfgPath, cfgPath, cfgPath, dir)
			}
			if id == "" {
				id = defaultNodeID()
			}
			if err := tlsutil.CheckNodeID(id); err != nil {
				return fmt.Errorf("--id: %w", err)
			}
			if host == "" {
				if host, err = localHost(addr); err != nil {
					return fmt.Errorf("cannot tell this machine's address towards %s (%v): pass --host", addr, err)
				}
			}
			role := config.RoleData
			if witness {
				role = config.RoleWitness
			}
			req := join.Request{Role: role, ID: id, Hosts: []string{host},
				RaftAddr:  net.JoinHostPort(host, strconv.Itoa(raftPort)),
				AdminAddr: net.JoinHostPort(host, strconv.Itoa(adminPort))}
			if role == config.RoleData && nfsPort > 0 {
				req.NFSAddr = net.JoinHostPort(host, strconv.Itoa(nfsPort))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			resp, err := join.Do(ctx, addr, tok, req)
			if err != nil {
				return err
			}
			cfg, err := join.WriteNodeDir(dir, req, resp)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "joined cluster %s as %s node %s (raft %s, admin %s); files in %s\n", resp.ClusterID, role, id, req.RaftAddr, req.AdminAddr, dir)
			if noStart {
				fmt.Fprintf(w, "start it with: keel serve --config %s   (or keel service install --config %s)\n", cfgPath, cfgPath)
				return nil
			}
			if logLevel != "" {
				cfg.Log.Level = logLevel
			}
			n, err := node.Start(cfg, newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "node running; it becomes a voter once caught up (keel status). Ctrl-C stops it; later: keel serve --config %s\n", cfgPath)
			<-cmd.Context().Done()
			return n.Close()
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the join token (keel-join.…)")
	cmd.Flags().StringVar(&id, "id", "", "this node's id (default: from the host name)")
	cmd.Flags().StringVar(&host, "host", "", "the address the other nodes reach this one at (default: this machine's address towards ADDRESS)")
	cmd.Flags().BoolVar(&witness, "witness", false, "join as a witness (votes, keeps the log, no files)")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "only write the files; do not run the node")
	cmd.Flags().IntVar(&raftPort, "raft-port", 7401, "raft port")
	cmd.Flags().IntVar(&adminPort, "admin-port", 7501, "admin API port")
	cmd.Flags().IntVar(&nfsPort, "nfs-port", 2049, "NFS port (data nodes; 0: none)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to keep trying to reach the cluster")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("token")
	return cmd
}

func newTunnelJoinCmd(g *globals) *cobra.Command {
	var token, name string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "join ADDRESS --token TOKEN [--name NAME]",
		Short: "Get this client machine's tunnel certificate and client.yaml from the cluster",
		Long: `tunnel join asks the cluster at ADDRESS (a node's admin address, host:7501) for a
client certificate, authenticated by a client TOKEN (keel token create --purpose client),
checking the cluster's CA against the token's fingerprint, and writes client.yaml,
client.crt, client.key and ca.crt into --dir (default /etc/keel as root). Then:

  keel tunnel --cluster /etc/keel/client.yaml --listen 127.0.0.1:2049`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, tok, err := joinTarget(args[0], token)
			if err != nil {
				return err
			}
			if name == "" {
				name = defaultNodeID()
			}
			dir := joinDir(cmd, g, "/etc/keel", ".keel-client")
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			resp, err := join.Do(ctx, addr, tok, join.Request{Role: join.RoleClient, ID: name})
			if err != nil {
				return err
			}
			p, err := join.WriteClientDir(dir, resp)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client %s of cluster %s: %s\nrun: keel tunnel --cluster %s --listen 127.0.0.1:2049\n", name, resp.ClusterID, p, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "a client join token (keel-join.…)")
	cmd.Flags().StringVar(&name, "name", "", "the client's name in its certificate (default: the host name)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to keep trying to reach the cluster")
	_ = cmd.MarkFlagRequired("token")
	return cmd
}

func newRemoveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove NODE [--force]",
		Short: "Take a node out of the cluster (refused if the rest could not keep a quorum)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *cluster.Client) error {
				return removeMember(cmd, g, c, args[0], force)
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even if the voters left could not form a quorum")
	addJSON(cmd, g)
	return cmd
}

func removeMember(cmd *cobra.Command, g *globals, c *cluster.Client, id string, force bool) error {
	var res cluster.RemoveResult
	path := "/v1/members/" + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	if err := c.Do(cmd.Context(), http.MethodDelete, path, nil, &res); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "removed %s; voters now: %s\n", res.Removed, strings.Join(res.Voters, ", "))
	for _, w := range res.Warnings {
		fmt.Fprintln(cmd.OutOrStdout(), "warning:", w)
	}
	return nil
}

func newLeaveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave --config node.yaml [--force]",
		Short: "Take this node out of its cluster (then stop its service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.cfgPath == "" {
				return errors.New("leave needs --config PATH/node.yaml of this node")
			}
			cfg, err := config.Load(g.cfgPath)
			if err != nil {
				return err
			}
			cc := cluster.FromNode(cfg)
			// Ask the node itself for the current members: the config may
			// predate joins.
			if c, err := cluster.NewClient(cc); err == nil {
				var ms []cluster.MemberInfo
				ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
				if c.GetLocal(ctx, cfg.Node.AdminAddr, "/v1/members", &ms) == nil && len(ms) > 0 {
					cc.Peers = nil
					for _, m := range ms {
						cc.Peers = append(cc.Peers, m.Peer)
					}
				}
				cancel()
				c.Close()
			}
			c, err := cluster.NewClient(cc)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := removeMember(cmd, g, c, cfg.Node.ID, force); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(cmd.OutOrStdout(), "stop this node's service now (systemctl stop keel-node, or end keel serve); its data in %s is no longer used\n", cfg.Path(cfg.Node.DataDir))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "leave even if the voters left could not form a quorum")
	addJSON(cmd, g)
	return cmd
}
