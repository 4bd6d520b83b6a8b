package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
)

func newVolumeExportCmd(g *globals) *cobra.Command {
	var (
		clients                         []string
		rw, ro                          bool
		rootSquash, noRootSquash, allSq bool
		anonUID, anonGID                uint32
	)
	cmd := &cobra.Command{
		Use:   "export NAME [--clients CIDR,…] [--rw|--ro] [--root-squash|--no-root-squash|--all-squash]",
		Short: "Set who may mount a volume over NFS and how their identities are mapped (like /etc/exports)",
		Long: `export sets a volume's NFS export, served at /NAME. Options not given keep their
current value. A new volume is exported read-write to 127.0.0.0/8 and ::1 with
root_squash (root becomes the anonymous user 65534).

  keel volume export data --clients 10.0.0.0/8,127.0.0.1/32 --rw --no-root-squash
  keel volume export archive --ro --all-squash --anonuid 1000 --anongid 1000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rw && ro {
				return fmt.Errorf("give --rw or --ro, not both")
			}
			if n := btoi(rootSquash) + btoi(noRootSquash) + btoi(allSq); n > 1 {
				return fmt.Errorf("give one of --root-squash, --no-root-squash, --all-squash")
			}
			return g.withClient(func(c *cluster.Client) error {
				vols, err := c.Volumes(cmd.Context())
				if err != nil {
					return err
				}
				var e *cluster.ExportInfo
				for _, v := range vols {
					if v.Name == args[0] {
						e = &v.Export
					}
				}
				if e == nil {
					return fmt.Errorf("no volume %q: see `keel volume list`", args[0])
				}
				f := cmd.Flags()
				if f.Changed("clients") {
					e.Clients = nil
					for _, cl := range clients {
						if cl = strings.TrimSpace(cl); cl != "" {
							e.Clients = append(e.Clients, cl)
						}
					}
				}
				if rw || ro {
					e.ReadOnly = ro
				}
				switch {
				case rootSquash:
					e.Squash = "root_squash"
				case noRootSquash:
					e.Squash = "no_root_squash"
				case allSq:
					e.Squash = "all_squash"
				}
				if f.Changed("anonuid") {
					e.AnonUID = anonUID
				}
				if f.Changed("anongid") {
					e.AnonGID = anonGID
				}
				v, err := c.SetExport(cmd.Context(), args[0], *e)
				if err != nil {
					return fmt.Errorf("export %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "/%s %s\n", v.Name, exportLine(v.Export))
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&clients, "clients", nil, "client networks allowed to mount, as CIDRs (comma-separated; empty: nobody)")
	cmd.Flags().BoolVar(&rw, "rw", false, "read-write")
	cmd.Flags().BoolVar(&ro, "ro", false, "read-only")
	cmd.Flags().BoolVar(&rootSquash, "root-squash", false, "map root to the anonymous user (default)")
	cmd.Flags().BoolVar(&noRootSquash, "no-root-squash", false, "let root be root")
	cmd.Flags().BoolVar(&allSq, "all-squash", false, "map every user to the anonymous user")
	cmd.Flags().Uint32Var(&anonUID, "anonuid", 65534, "uid of the anonymous user")
	cmd.Flags().Uint32Var(&anonGID, "anongid", 65534, "gid of the anonymous user")
	addJSON(cmd, g)
	return cmd
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// exportLine renders an export like an /etc/exports line.
func exportLine(e cluster.ExportInfo) string {
	mode := "rw"
	if e.ReadOnly {
		mode = "ro"
	}
	cl := strings.Join(e.Clients, ",")
	if cl == "" {
		cl = "(nobody)"
	}
	return fmt.Sprintf("%s(%s,%s,anonuid=%d,anongid=%d)", cl, mode, e.Squash, e.AnonUID, e.AnonGID)
}
