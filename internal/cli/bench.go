package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"keel/internal/backup/s3/s3test"
	"keel/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure keel on this machine",
	}
	cmd.AddCommand(newBenchStoreCmd(g), newBenchFailoverCmd(g), newBenchNFSCmd(g), newBenchBackupCmd(g))
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
			return report(cmd, g, res, err, bench.WriteText)
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

func newBenchFailoverCmd(g *globals) *cobra.Command {
	o := bench.DefaultFailoverOptions()
	cmd := &cobra.Command{
		Use:   "failover [--trials 10] [--dir TMP]",
		Short: "Kill -9 the active node again and again under an NFS client and measure the pause it sees",
		Long: `failover starts 3 data nodes (real ` + "`keel serve`" + ` processes) in a temporary directory under
--dir (removed afterwards), serves a tunnel in-process and runs one NFSv3 client through
it: create a file, write 4 KiB FILE_SYNC, read it back and compare, one file per
operation. Each trial kills the active node with SIGKILL, waits until the client's
operations have succeeded again for 2 s, restarts the killed node and waits until it has
caught up. It prints, per trial, the gap from the last successful operation before the
kill to the first one after it and the errors the client saw, then reads every
acknowledged file back and counts the missing or wrong ones, and compares with keel's
targets (median gap ≤ 2 s, max ≤ 4 s, no client error, no lost write). Progress goes to
stderr; the exit status is 0 unless something fails, whether or not the targets are met.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Executable, err = os.Executable(); err != nil {
				return fmt.Errorf("find the keel binary: %w", err)
			}
			o.Progress = cmd.ErrOrStderr()
			res, err := bench.RunFailover(cmd.Context(), o)
			return report(cmd, g, res, err, bench.WriteFailoverText)
		},
	}
	// --dir here names where to run, not a cluster: it shadows the global flag.
	cmd.Flags().StringVar(&o.Dir, "dir", os.TempDir(), "directory to run in")
	cmd.Flags().IntVar(&o.Trials, "trials", o.Trials, "kills of the active node (the targets are judged on at least 10)")
	addJSON(cmd, g)
	return cmd
}

func newBenchNFSCmd(g *globals) *cobra.Command {
	o := bench.DefaultNFSOptions()
	var size string
	cmd := &cobra.Command{
		Use:   "nfs [--size 256MiB] [--files 10000] [--dir TMP]",
		Short: "Compare keel's NFS service (1 and 3 data nodes) with NFS-Ganesha on the same disk",
		Long: `nfs serves a directory under --dir (removed afterwards) in turn with keel with 1 data
node, keel with 3 data nodes and NFS-Ganesha with FSAL VFS (if installed; it starts
rpcbind if no portmapper answers, and stops it again), and drives each with the same
clients: a sequential write and read of --size with libnfs' nfs-cp (byte-compared), and
--files CREATE + GETATTR + REMOVE with keel's Go NFSv3 client. It prints MiB/s and
operations/s, what each server promised for an acknowledged write, the CPU each process
used, and compares with keel's targets. Needs nfs-cp (apt-get install libnfs-utils).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Size, err = parseSize(size); err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if o.Executable, err = os.Executable(); err != nil {
				return fmt.Errorf("find the keel binary: %w", err)
			}
			o.Progress = cmd.ErrOrStderr()
			res, err := bench.RunNFS(cmd.Context(), o)
			return report(cmd, g, res, err, bench.WriteNFSText)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", os.TempDir(), "directory to serve from (on the disk to test)")
	cmd.Flags().StringVar(&size, "size", "256MiB", "size of the file copied in and out with nfs-cp")
	cmd.Flags().IntVar(&o.Files, "files", o.Files, "files created, inspected and removed by the metadata loop")
	cmd.Flags().StringSliceVar(&o.Servers, "servers", o.Servers, "servers to measure, of keel-1, keel-3 and ganesha")
	cmd.Flags().BoolVar(&o.Warmup, "warmup", o.Warmup, "copy the file in and out once, unmeasured, on each server before measuring (--warmup=false: measure the first copy)")
	addJSON(cmd, g)
	return cmd
}

func newBenchBackupCmd(g *globals) *cobra.Command {
	o := bench.DefaultBackupOptions()
	var size, small string
	var change float64
	cmd := &cobra.Command{
		Use:   "backup [--size 1GiB] [--dir TMP]",
		Short: "Measure backup push, restore and incremental push to file:// and to a local S3 server, and snapshot creation",
		Long: `backup starts versitygw (a real S3 API server, posix backend) and one data node (a real
` + "`keel serve`" + ` process) in a temporary directory under --dir (removed afterwards), writes --size
of random data into a volume and measures, side by side for a file:// store and the S3
server: a full push and a restore into a new volume (MB/s), and after rewriting --change
of the data in 64 KiB pieces, an incremental push (bytes uploaded and time); then the
creation time of snapshots of that volume and of a --small-size one. Needs versitygw
(` + s3test.Install + `) and about 8 × --size free.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Size, err = parseSize(size); err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if o.SmallSize, err = parseSize(small); err != nil {
				return fmt.Errorf("--small-size: %w", err)
			}
			o.Change = change / 100
			if o.Executable, err = os.Executable(); err != nil {
				return fmt.Errorf("find the keel binary: %w", err)
			}
			o.Progress = cmd.ErrOrStderr()
			res, err := bench.RunBackup(cmd.Context(), o)
			return report(cmd, g, res, err, bench.WriteBackupText)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", os.TempDir(), "directory to run in (on the disk to test)")
	cmd.Flags().StringVar(&size, "size", "1GiB", "random data in the volume pushed and restored")
	cmd.Flags().StringVar(&small, "small-size", "10MiB", "data in the small volume whose snapshot time is compared")
	cmd.Flags().Float64Var(&change, "change", 100*o.Change, "percent of the data rewritten before the incremental push")
	cmd.Flags().IntVar(&o.SnapshotRuns, "snapshot-runs", o.SnapshotRuns, "snapshots timed per volume")
	addJSON(cmd, g)
	return cmd
}

// report prints a benchmark's result, as JSON with --json.
func report[R any](cmd *cobra.Command, g *globals, res R, err error, text func(io.Writer, R)) error {
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	text(cmd.OutOrStdout(), res)
	return nil
}
