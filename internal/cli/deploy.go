package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/deploy"
)

func newDeployCmd(g *globals) *cobra.Command {
	var (
		o       deploy.Options
		volumes []string
	)
	cmd := &cobra.Command{
		Use:   "deploy --ssh-key KEY --data h1,h2 [--witness h3 | --data h3] --client h4,h5 [--volume data:100GiB]",
		Short: "Set up a whole cluster on machines over SSH (binary, certificates, services, tunnels, a check)",
		Long: `deploy does, from this machine, what the seed's configure script did: it connects to every
host over SSH (the key's public half in root's authorized_keys; host keys checked against
~/.ssh/known_hosts unless --insecure-ignore-host-key), copies this keel binary, makes the
cluster on the first data host (keel init), joins the other data hosts and the witness
(keel join, with tokens), runs each node under systemd (keel service install) or, without
systemd, as a background process with a pid file, creates the volumes, gives each client
host its tunnel certificate and runs its tunnel, then writes a file through the first
client's tunnel and reads it through the last one's. This machine gets a client.yaml in
--local-dir for keel status.

Run it again with the same lists: it checks each step and changes only what is missing
(a copied binary that differs restarts that host's service). Add a host to a list and
run it again: the host is joined.

  keel deploy --ssh-key ~/.ssh/id_ed25519 --data 10.0.0.1,10.0.0.2 --witness 10.0.0.3 \
      --client 10.0.0.4,10.0.0.5 --volume data:100GiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, v := range volumes {
				name, size, ok := strings.Cut(v, ":")
				if !ok || name == "" {
					return fmt.Errorf("--volume %q: write NAME:SIZE, e.g. data:100GiB", v)
				}
				n, err := parseSize(size)
				if err != nil {
					return fmt.Errorf("--volume %q: %w", v, err)
				}
				o.Volumes = append(o.Volumes, deploy.Volume{Name: name, Size: n})
			}
			if !g.json {
				o.Out = cmd.OutOrStdout()
			}
			res, err := deploy.Run(cmd.Context(), o)
			if err != nil {
				var se *deploy.StepError
				if errors.As(err, &se) || strings.Contains(err.Error(), "failed:") {
					return fmt.Errorf("deploy stopped:\n%w", err)
				}
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "\ndeployed cluster %s in %.1fs (nodes %s; clients %s; check through the tunnels: %v)\n\n",
				res.ClusterID, res.Took.Seconds(), strings.Join(res.Nodes, " "), strings.Join(res.Clients, " "), res.Verified)
			if cc, err := config.LoadClient(res.Client); err == nil {
				if c, err := cluster.NewClient(cc); err == nil {
					ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
					printStatus(w, c.Status(ctx, 3*time.Second))
					cancel()
					c.Close()
				}
			}
			abs, _ := filepath.Abs(res.Client)
			fmt.Fprintf(w, "\nstatus from here:  keel status --config %s\n", abs)
			if len(res.Clients) > 0 && len(o.Volumes) > 0 {
				v := o.Volumes[0].Name
				listen := o.Listen
				if listen == "" {
					listen = "127.0.0.1:2049"
				}
				host, port, _ := strings.Cut(listen, ":")
				fmt.Fprintf(w, "mount on a client:  mount -t nfs -o vers=3,proto=tcp,port=%s,mountport=%s,nolock,hard %s:/%s /mnt/%s\n", port, port, host, v, v)
				fmt.Fprintf(w, "or with libnfs:     nfs-ls 'nfs://%s/%s?nfsport=%s&mountport=%s'\n", host, v, port, port)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.SSHKey, "ssh-key", "", "private key to log in with")
	f.StringSliceVar(&o.Data, "data", nil, "data hosts, [user@]host[:port], comma-separated (first: where the cluster is made)")
	f.StringSliceVar(&o.Witness, "witness", nil, "the witness host")
	f.StringSliceVar(&o.Clients, "client", nil, "client hosts that get a tunnel")
	f.StringArrayVar(&volumes, "volume", nil, "a volume to create, NAME:SIZE (repeat)")
	f.BoolVar(&o.Insecure, "insecure-ignore-host-key", false, "do not check host keys (only on a network you trust)")
	f.StringVar(&o.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	f.StringVar(&o.User, "user", "root", "SSH user where a host does not name one")
	f.StringVar(&o.LocalDir, "local-dir", "keel-deploy", "where this machine's client.yaml goes")
	f.StringVar(&o.RemoteDir, "remote-dir", "/var/lib/keel", "directory on each host (node/, client/, admin/)")
	f.StringVar(&o.RemoteBin, "remote-bin", "/usr/local/bin/keel", "where the binary goes on each host")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:2049", "the tunnels' local NFS address on client hosts")
	addJSON(cmd, g)
	return cmd
}
