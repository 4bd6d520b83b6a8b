package cli

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"keel/internal/config"
	"keel/internal/node"
)

func newServeCmd(g *globals) *cobra.Command {
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "serve --config node.yaml",
		Short: "Run a storage node",
		Long: `serve runs one storage node from its node.yaml (made by keel init) until it is
interrupted (SIGINT/SIGTERM), then stops cleanly. Environment variables KEEL_NODE_ID,
KEEL_DATA_DIR, KEEL_RAFT_ADDR, KEEL_ADMIN_ADDR, KEEL_LOG_LEVEL and KEEL_LOG_FORMAT
override the file; flags override both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.cfgPath == "" {
				return fmt.Errorf("serve needs --config PATH/node.yaml (made by `keel init`)")
			}
			cfg, err := config.Load(g.cfgPath)
			if err != nil {
				return err
			}
			if logLevel != "" {
				cfg.Log.Level = logLevel
			}
			if logFormat != "" {
				cfg.Log.Format = logFormat
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid config %s:\n%w", g.cfgPath, err)
			}
			logger := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			// KEEL_CPUPROFILE=FILE writes a Go CPU profile of the whole run,
			// for finding where a benchmark's time goes; "{id}" in FILE is
			// replaced by the node's id (one profile per node of a cluster).
			if path := os.Getenv("KEEL_CPUPROFILE"); path != "" {
				f, err := os.Create(strings.ReplaceAll(path, "{id}", cfg.Node.ID))
				if err != nil {
					return fmt.Errorf("KEEL_CPUPROFILE: %w", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("KEEL_CPUPROFILE: %w", err)
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			n, err := node.Start(cfg, logger)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			logger.Info("stopping on signal")
			return n.Close()
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "text or json")
	return cmd
}
