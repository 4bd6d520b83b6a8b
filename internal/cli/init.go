package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"keel/internal/backup"
	"keel/internal/config"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		nodes, witness []string
		raftPort       int
		adminPort      int
		nfsPort        int
		clusterID      string
		jf             initJoinFlags
		restoreFrom    string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster: its CA, node and client certificates, file-handle secret and configs",
		Long: `init creates, in --dir, everything a new cluster needs:

  ca.crt ca.key secret          the cluster CA and the file-handle MAC secret (keep ca.key safe)
  client.yaml client.crt/.key   what the CLI and tunnels use to reach the cluster
  nodes/<id>/                   one self-contained directory per node: copy it to that
                                machine and run  keel serve --config nodes/<id>/node.yaml

Name each node with --node ID=HOST (HOST is the address the others reach it at),
or ID=HOST:RAFTPORT:ADMINPORT[:NFSPORT] to give it its own ports (several nodes on
one host).
Supported shapes: 3 data nodes; 2 data nodes + 1 witness (--witness ID=HOST);
1 data node for trying things out.

  keel init --dir ./prod --node n1=10.0.0.1 --node n2=10.0.0.2 --witness w1=10.0.0.3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := config.InitSpec{Dir: g.dir, ClusterID: clusterID, CAOnDataNodes: !jf.keepCAOffline}
			if restoreFrom != "" {
				ref, err := resolveStateImage(cmd.Context(), restoreFrom)
				if err != nil {
					return err
				}
				spec.RestoreFrom = ref
			}
			add := func(list []string, role string) error {
				for _, s := range list {
					ns, err := parseNodeSpec(s, raftPort, adminPort, nfsPort)
					if err != nil {
						return err
					}
					ns.Role = role
					spec.Nodes = append(spec.Nodes, ns)
				}
				return nil
			}
			if err := add(nodes, config.RoleData); err != nil {
				return err
			}
			if err := add(witness, config.RoleWitness); err != nil {
				return err
			}
			if len(spec.Nodes) == 0 {
				return fmt.Errorf("name the nodes with --node ID=HOST (and optionally --witness ID=HOST); for a local cluster just run `keel up`")
			}
			lay, err := config.Generate(spec)
			if err != nil {
				return err
			}
			tokens, err := jf.issue(lay)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), struct {
					*config.Layout
					Tokens *initTokens `json:"tokens,omitempty"`
				}{lay, tokens})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Created cluster %s in %s\n\n", lay.ClusterID, lay.Dir)
			if spec.RestoreFrom != "" {
				fmt.Fprintf(w, "Its data nodes start from state image %s: every data node must be able to read that\n"+
					"store (the same s3:// bucket, or the file:// directory on its own machine).\n\n", spec.RestoreFrom)
			}
			for _, id := range lay.NodeIDs {
				fmt.Fprintf(w, "  node %-8s %s\n", id, lay.NodeConfigs[id])
			}
			fmt.Fprintf(w, "  client        %s\n\n", lay.ClientConfig)
			fmt.Fprintf(w, "Next: copy each nodes/<id> directory to its machine and run there\n  keel serve --config node.yaml\n")
			fmt.Fprintf(w, "Then: keel status --config %s\n", lay.ClientConfig)
			tokens.print(w, lay)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "a data node, as ID=HOST (repeat)")
	cmd.Flags().StringArrayVar(&witness, "witness", nil, "a witness node, as ID=HOST")
	cmd.Flags().IntVar(&raftPort, "raft-port", 7401, "raft port on every node")
	cmd.Flags().IntVar(&adminPort, "admin-port", 7501, "admin API port on every node")
	cmd.Flags().IntVar(&nfsPort, "nfs-port", 2049, "NFSv3 + MOUNT port on every data node (0: no NFS service)")
	cmd.Flags().StringVar(&clusterID, "cluster-id", "", "cluster id (default: random)")
	jf.register(cmd)
	cmd.Flags().StringVar(&restoreFrom, "restore-from", "", "make the cluster from the newest state image in this backup URL (or URL@ID): disaster recovery")
	addJSON(cmd, g)
	return cmd
}

// parseNodeSpec reads ID=HOST or ID=HOST:RAFTPORT:ADMINPORT[:NFSPORT].
func parseNodeSpec(s string, raftPort, adminPort, nfsPort int) (config.NodeSpec, error) {
	bad := fmt.Errorf("--node/--witness %q: write ID=HOST or ID=HOST:RAFTPORT:ADMINPORT[:NFSPORT], e.g. n1=10.0.0.1", s)
	id, rest, ok := strings.Cut(s, "=")
	if !ok || id == "" || rest == "" {
		return config.NodeSpec{}, bad
	}
	ns := config.NodeSpec{ID: id, Host: rest, RaftPort: raftPort, AdminPort: adminPort, NFSPort: nfsPort}
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 1:
	case 3, 4:
		ports := make([]int, len(parts)-1)
		for i, p := range parts[1:] {
			v, err := strconv.Atoi(p)
			if err != nil || v <= 0 || v > 65535 {
				return config.NodeSpec{}, bad
			}
			ports[i] = v
		}
		ns.Host, ns.RaftPort, ns.AdminPort = parts[0], ports[0], ports[1]
		if len(ports) == 3 {
			ns.NFSPort = ports[2]
		}
	default:
		return config.NodeSpec{}, bad
	}
	if ns.Host == "" {
		return config.NodeSpec{}, bad
	}
	return ns, nil
}

// resolveStateImage turns a backup URL (or URL@ID) into the URL@ID of the
// state image a restored cluster starts from: the newest in the store,
// whatever cluster it was taken of. The store is read from this machine.
func resolveStateImage(ctx context.Context, ref string) (string, error) {
	raw, id := backup.ParseRef(ref)
	st, err := backup.Open(raw)
	if err != nil {
		return "", fmt.Errorf("--restore-from: %w", err)
	}
	m, err := backup.FindState(ctx, st, id, "")
	if err != nil {
		return "", fmt.Errorf("--restore-from: %w (a volume alone comes back with `keel backup restore`)", err)
	}
	return raw + "@" + m.ID, nil
}
