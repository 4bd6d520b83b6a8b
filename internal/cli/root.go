// Package cli implements keel's command line: one file per subcommand. Every
// command that reports something accepts --json.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/config"
)

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keel:", err)
		return 1
	}
	return 0
}

// globals are the flags shared by the commands that talk to a cluster.
type globals struct {
	dir     string
	cfgPath string
	json    bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "keel",
		Short: "Replicated, self-healing network storage for a handful of machines",
		Long: `keel keeps two or three copies of your volumes on separate machines, acknowledges a
write only once a quorum has it on disk, and keeps serving when a machine dies.

Try it locally:
  keel up                      # a 3-node cluster in ~/.keel, each node its own process
  keel status                  # in another terminal
  keel volume create web --size 1GiB

On real machines: keel init, copy each nodes/<id> directory to its machine, then
keel serve --config node.yaml on each.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dir, "dir", defaultDir(), "directory of a local cluster made by `keel up` or `keel init` (env KEEL_DIR)")
	root.PersistentFlags().StringVar(&g.cfgPath, "config", "", "a node's node.yaml or a client's client.yaml (instead of --dir)")
	root.AddCommand(
		newInitCmd(g), newServeCmd(g), newUpCmd(g), newStatusCmd(g), newVolumeCmd(g),
		newFsCmd(g), newSnapshotCmd(g), newFailoverCmd(g), newTunnelCmd(g), newVersionCmd(g),
		newBenchCmd(g),
		newBackupCmd(g),
		newJoinCmd(g), newLeaveCmd(g), newRemoveCmd(g), newTokenCmd(g), newServiceCmd(g), newDeployCmd(g),
	)
	return root
}

// defaultDir is where `keel up` keeps its cluster unless told otherwise.
func defaultDir() string {
	if d := os.Getenv("KEEL_DIR"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".keel")
	}
	return ".keel"
}

func addJSON(cmd *cobra.Command, g *globals) {
	cmd.Flags().BoolVar(&g.json, "json", false, "print JSON instead of a table")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clientConfig finds how to reach the cluster: --config (a client.yaml or a
// node.yaml), else the client.yaml in --dir.
func (g *globals) clientConfig() (*config.Client, error) {
	path := g.cfgPath
	if path == "" {
		path = filepath.Join(g.dir, config.FileClientConfig)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no cluster found in %s (looked for %s): start one with `keel up`, or pass --dir DIR or --config FILE", g.dir, path)
		}
		return config.LoadClient(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --config: %w", err)
	}
	if strings.Contains(string(b), "\nnode:") || strings.HasPrefix(string(b), "node:") {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		return cluster.FromNode(cfg), nil
	}
	return config.LoadClient(path)
}

func (g *globals) client() (*cluster.Client, error) {
	cc, err := g.clientConfig()
	if err != nil {
		return nil, err
	}
	if err := cc.Validate(); err != nil {
		return nil, err
	}
	return cluster.NewClient(cc)
}

// withClient runs f with a client of the cluster found by --dir or --config.
func (g *globals) withClient(f func(c *cluster.Client) error) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// newLogger makes the process logger from a level and format name.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
