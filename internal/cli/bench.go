package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"keel/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure keel on this machine",
	}
	cmd.AddCommand(newBenchStoreCmd(g))
	return cmd
}

func newBenchStoreCmd(g *globals) *cobra.Command {
	o := bench.DefaultOptions()
	var dir, size string
	cmd := &cobra.Command{
		Use:   "store [--dir TMP] [--size 1GiB]",
		Short: "Measure replicated write throughput, latency and write amplification against the raw disk",
		Long: `store measures, in one run, in a temporary directory under --dir (removed afterwards):

  the raw disk     sequential writes each followed by fdatasync (MB/s), and 4 KiB
                   write+fdatasync latency: the limit keel works against
  keel, 1 and 3    real ` + "`keel serve`" + ` processes on free loopback ports: write throughput
  data nodes       from concurrent writers, 4 KiB write latency (acknowledged after quorum
                   commit), and each node's disk writes per payload byte (write
                   amplification, from /proc/<pid>/io)

and compares them with keel's targets. Progress goes to stderr; the exit status is 0
unless something fails, whether or not the targets are met. Needs about 10 × --size free.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Size, err = parseSize(size); err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if o.Executable, err = os.Executable(); err != nil {
				return fmt.Errorf("find the keel binary: %w", err)
			}
			o.Dir, o.Progress = dir, cmd.ErrOrStderr()
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			bench.WriteText(cmd.OutOrStdout(), res)
			return nil
		},
	}
	// --dir here names where to measure, not a cluster: it shadows the global flag.
	cmd.Flags().StringVar(&dir, "dir", os.TempDir(), "directory to measure in (on the filesystem to test)")
	cmd.Flags().StringVar(&size, "size", "1GiB", "payload of the throughput phase and of the sequential disk test")
	cmd.Flags().IntVar(&o.Writers, "writers", o.Writers, "concurrent writers of the throughput phase")
	cmd.Flags().IntVar(&o.LatencyOps, "latency-ops", o.LatencyOps, "sequential 4 KiB writes of each latency test")
	addJSON(cmd, g)
	return cmd
}
