package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"keel/internal/service"
)

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Run a node or a tunnel as a systemd service",
	}
	var (
		tunnelCfg, name, user, unitDir, listen, binary string
		noStart, print                                 bool
	)
	install := &cobra.Command{
		Use:   "install (--config node.yaml | --tunnel client.yaml)",
		Short: "Write a systemd unit for this node (or tunnel), enable and start it",
		Long: `install writes /etc/systemd/system/keel-node.service (or keel-tunnel.service) that runs
this keel binary with the given config: restarted on failure, LimitNOFILE raised, the
node's directory owned by --user if given. It then runs systemctl daemon-reload, enable
and start (restart if the unit changed). Running it again with the same options changes
nothing. Without systemd it writes the unit and says so.

  keel service install --config /var/lib/keel/node.yaml
  keel service install --tunnel /etc/keel/client.yaml --listen 127.0.0.1:2049
  keel service install --config node.yaml --print        # show the unit only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := service.Spec{Kind: service.KindNode, Config: g.cfgPath, Name: name, User: user, Listen: listen, Binary: binary}
			if tunnelCfg != "" {
				s.Kind, s.Config = service.KindTunnel, tunnelCfg
			}
			if s.Config == "" {
				return errors.New("service install needs --config node.yaml (a node) or --tunnel client.yaml (a tunnel)")
			}
			abs, err := filepath.Abs(s.Config)
			if err != nil {
				return err
			}
			if _, err := os.Stat(abs); err != nil {
				return fmt.Errorf("service install: %w", err)
			}
			s.Config = abs
			if s.Binary == "" {
				if s.Binary, err = os.Executable(); err != nil {
					return err
				}
			}
			if print {
				u, err := service.Unit(s)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), u)
				return nil
			}
			path, err := service.Install(s, unitDir, !noStart)
			switch {
			case errors.Is(err, service.ErrNoSystemd):
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s; %v: start it yourself, e.g. %s\n", path, err, startHint(s))
				return nil
			case err != nil:
				return err
			}
			if noStart {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", path)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s; enabled and started (systemctl status %s)\n", path, filepath.Base(path))
			}
			return nil
		},
	}
	install.Flags().StringVar(&tunnelCfg, "tunnel", "", "install a tunnel for this client.yaml instead of a node")
	install.Flags().StringVar(&name, "name", "", "unit name (default keel-node or keel-tunnel)")
	install.Flags().StringVar(&user, "user", "", "run as this user, owning the node's directory (default root)")
	install.Flags().StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "where to write the unit")
	install.Flags().StringVar(&listen, "listen", "", "tunnel: local NFS address (default 127.0.0.1:2049)")
	install.Flags().StringVar(&binary, "binary", "", "keel binary the unit runs (default: this one)")
	install.Flags().BoolVar(&noStart, "no-start", false, "only write the unit")
	install.Flags().BoolVar(&print, "print", false, "print the unit and change nothing")
	cmd.AddCommand(install)
	return cmd
}

func startHint(s service.Spec) string {
	if s.Kind == service.KindTunnel {
		return fmt.Sprintf("setsid %s tunnel --cluster %s --listen %s", s.Binary, s.Config, s.Listen)
	}
	return fmt.Sprintf("setsid %s serve --config %s", s.Binary, s.Config)
}
