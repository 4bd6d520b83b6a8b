package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/backup"
	"keel/internal/cluster"
)

const backupURLHelp = `The leader (the active node) does the work, so a backup URL names a store as
the leader's machine sees it:

  file:///absolute/path   a directory on the leader's machine; put it on storage
                          that survives that machine (a mount of another disk or host)
  s3://BUCKET[/PREFIX]    an S3 bucket on AWS or any S3 API server (MinIO, Ceph RGW,
                          versitygw, ...), with optional settings
                          ?endpoint=http://HOST:PORT&region=REGION&path_style=true|false&profile=NAME

For s3://, the credentials and defaults come from the environment of ` + "`keel serve`" + ` on
every data node (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_PROFILE), the shared files ~/.aws/credentials
and ~/.aws/config, or the instance's role; the URL's settings come first. With an
endpoint, path-style addressing is the default. Example for MinIO:
  s3://keel-backups/cluster1?endpoint=http://minio.lan:9000`

func newBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Incremental, verified backups of volumes to a directory (file://) or an S3 bucket (s3://)",
		Long: `Back volumes up into a backup store, list, verify, restore and prune backups.

A push snapshots the volume (crash-consistent), stores the file data in
content-addressed 64 KiB chunks that earlier backups did not already store,
and writes a manifest of the tree last: a backup is there whole or not at all.
Every object is checked against its SHA-256 whenever it is read.

` + backupURLHelp,
	}
	cmd.AddCommand(newBackupPushCmd(g), newBackupListCmd(g), newBackupVerifyCmd(g), newBackupRestoreCmd(g), newBackupPruneCmd(g))
	return cmd
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func newBackupPushCmd(g *globals) *cobra.Command {
	var to string
	var quiet, full, state bool
	cmd := &cobra.Command{
		Use:   "push VOLUME --to URL | push --state --to URL",
		Short: "Back a volume (or, with --state, the whole node state) up: snapshot it and upload what the store lacks",
		Long: `Back a volume up: the leader snapshots it, uploads the chunks of file data
the store does not hold yet, writes the backup's manifest, and deletes the
snapshot. A file whose size, mtime and ctime are those of the latest backup
of the volume is not read again (--full reads every file). Progress goes to
stderr.

With --state instead of a volume, the leader backs up its whole replicated
state (every volume, snapshots and all) at one raft index, as a state image:
a data node that lost its disk is rebuilt from the newest one (seed_from in
its config) and then takes from the leader only the changes made after it.

` + backupURLHelp,
		Example: "  keel backup push data --to file:///mnt/backups/keel\n" +
			"  keel backup push data --to s3://keel-backups/cluster1\n" +
			"  keel backup push data --to 's3://keel-backups/cluster1?endpoint=http://minio.lan:9000'\n" +
			"  keel backup push --state --to file:///mnt/backups/keel",
		Args: func(cmd *cobra.Command, args []string) error {
			if state {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to URL is needed, e.g. --to file:///mnt/backups/keel or --to s3://bucket/prefix")
			}
			what := "state"
			if !state {
				what = args[0]
			}
			return g.withClient(func(c *cluster.Client) error {
				req := cluster.BackupPushRequest{To: to, Full: full}
				progress, endProgress := progressPrinter(cmd.ErrOrStderr(), quiet)
				var res cluster.BackupPushResult
				var err error
				if state {
					res, err = c.StatePush(cmd.Context(), req, progress)
				} else {
					res, err = c.BackupPushWith(cmd.Context(), what, req, progress)
				}
				endProgress()
				if err != nil {
					return fmt.Errorf("backup push %s: %w", what, err)
				}
				for _, w := range res.Warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), res)
				}
				use := fmt.Sprintf("restore with: keel backup restore %s --volume NEW", shellQuote(res.URL+"@"+res.ID))
				if state {
					use = fmt.Sprintf("rebuild a data node from it with seed_from: %s in its node.yaml (and an empty data_dir)", res.URL)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup %s of %s: %d files, %s (raft index %d)\n"+
					"scanned %s (%s unchanged, not read), uploaded %s in %d new chunks (%d reused) + manifest %s, in %s\n%s\n",
					res.ID, res.Volume, res.Files, formatSize(res.Bytes), res.RaftIndex,
					formatSize(res.BytesScanned), formatSize(res.BytesUnchanged), formatSize(res.BytesUploaded), res.ChunksUploaded,
					res.ChunksReused, formatSize(uint64(res.ManifestBytes)), seconds(res.DurationSeconds), use)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "backup URL: file:///path on the leader's machine, or s3://bucket/prefix")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	cmd.Flags().BoolVar(&full, "full", false, "read every file, even those unchanged since the latest backup")
	cmd.Flags().BoolVar(&state, "state", false, "back up the whole node state (a state image, for rebuilding a node) instead of a volume")
	addJSON(cmd, g)
	return cmd
}

func newBackupListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List the backups in a store, with the space each alone holds",
		Long:  "List the backups in a store (read by the leader).\n\n" + backupURLHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *cluster.Client) error {
				list, err := c.Backups(cmd.Context(), args[0])
				if err != nil {
					return fmt.Errorf("backup list: %w", err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), list)
				}
				if len(list) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no backups in %s\n", args[0])
					return nil
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tVOLUME\tTIME\tFILES\tBYTES\tUNIQUE")
				for _, b := range list {
					if b.Error != "" {
						fmt.Fprintf(tw, "%s\t%s\tDAMAGED: %s\t\t\t\n", b.ID, b.Volume, b.Error)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", b.ID, b.Volume, b.Time.Local().Format(time.DateTime),
						b.Files, formatSize(b.Bytes), formatSize(b.UniqueBytes))
				}
				return tw.Flush()
			})
		},
	}
	addJSON(cmd, g)
	return cmd
}

func newBackupVerifyCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "verify URL[@ID]",
		Short: "Read back every object of a backup (of all backups) and check every checksum",
		Long: `Read back every object of backup ID (without @ID: of every backup in the
store) and check its SHA-256. Exits non-zero naming the first missing or
corrupt object.

` + backupURLHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, id := backup.ParseRef(args[0])
			return g.withClient(func(c *cluster.Client) error {
				progress, endProgress := progressPrinter(cmd.ErrOrStderr(), quiet)
				res, err := c.BackupVerify(cmd.Context(), u, id, progress)
				endProgress()
				if g.json && res.Backups != nil {
					if perr := printJSON(cmd.OutOrStdout(), res); perr != nil {
						return perr
					}
				}
				if err != nil {
					for _, p := range res.Problems {
						fmt.Fprintln(cmd.ErrOrStderr(), "problem:", p)
					}
					return fmt.Errorf("backup verify %s: %w", args[0], err)
				}
				if !g.json {
					fmt.Fprintf(cmd.OutOrStdout(), "ok: %d backups, %d chunks (%s) read back and checked in %s\n",
						len(res.Backups), res.Chunks, formatSize(res.Bytes), seconds(res.DurationSeconds))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	addJSON(cmd, g)
	return cmd
}

func newBackupRestoreCmd(g *globals) *cobra.Command {
	var volume, size, from string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "restore URL[@ID] --volume NEW [--size SIZE]",
		Short: "Make a new volume from a backup (the latest, or @ID)",
		Long: `Make volume NEW with the tree of a backup: directories, files and their data,
symlinks, hard links, modes, owners and times (ctime becomes the restore's).
Without @ID the latest backup is used. NEW must not exist. Each chunk's
SHA-256 is checked before its data is written; a missing or altered object
aborts the restore, names the object and deletes the partial volume.

` + backupURLHelp,
		Example: "  keel backup restore file:///mnt/backups/keel --volume data-restored\n" +
			"  keel backup restore file:///mnt/backups/keel@20261125T154000Z-1a2b3c --volume data-nov25",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if volume == "" {
				return errors.New("--volume NEW is needed: the name of the volume to create")
			}
			req := cluster.BackupRestoreRequest{Volume: volume, From: from}
			req.URL, req.ID = backup.ParseRef(args[0])
			if size != "" {
				var err error
				if req.SizeBytes, err = parseSize(size); err != nil {
					return fmt.Errorf("--size: %w", err)
				}
			}
			return g.withClient(func(c *cluster.Client) error {
				progress, endProgress := progressPrinter(cmd.ErrOrStderr(), quiet)
				res, err := c.BackupRestore(cmd.Context(), req, progress)
				endProgress()
				if err != nil {
					return fmt.Errorf("backup restore %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "restored backup %s of %s into volume %s (%s): %d files, %d dirs, %d symlinks, %d hard links, %s written in %s\n",
					res.ID, res.Volume, res.Restored, formatSize(res.SizeBytes), res.Files, res.Dirs, res.Symlinks, res.HardLinks,
					formatSize(res.BytesWritten), seconds(res.DurationSeconds))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&volume, "volume", "", "the volume to create (must not exist)")
	cmd.Flags().StringVar(&size, "size", "", "its size limit (default: the backed-up volume's)")
	cmd.Flags().StringVar(&from, "from", "", "the backed-up volume, when the store holds backups of several (default: the only one)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	addJSON(cmd, g)
	return cmd
}

func newBackupPruneCmd(g *globals) *cobra.Command {
	var req cluster.BackupPruneRequest
	cmd := &cobra.Command{
		Use:   "prune URL --keep-last N [--keep-daily N] [--dry-run]",
		Short: "Delete old backups, then the data no remaining backup uses",
		Long: `For each volume, keep the newest N backups (--keep-last) and the newest
backup of each of the last N days that have backups (--keep-daily, UTC);
delete the other manifests, then every chunk no kept backup uses. Refused
while a push to the store runs, or if a manifest cannot be read.

` + backupURLHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.URL = args[0]
			if req.KeepLast <= 0 && req.KeepDaily <= 0 {
				return errors.New("say what to keep: --keep-last N and/or --keep-daily N (N ≥ 1)")
			}
			return g.withClient(func(c *cluster.Client) error {
				res, err := c.BackupPrune(cmd.Context(), req)
				if err != nil {
					return fmt.Errorf("backup prune: %w", err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), res)
				}
				verb := "deleted"
				if res.DryRun {
					verb = "would delete"
				}
				for _, d := range res.Deleted {
					fmt.Fprintf(cmd.OutOrStdout(), "%s backup %s\n", verb, d)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "kept %d backups; %s %d backups and %d chunks (%s)\n",
					len(res.Kept), verb, len(res.Deleted), res.ChunksDeleted, formatSize(res.BytesFreed))
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&req.KeepLast, "keep-last", 0, "keep the newest N backups of each volume")
	cmd.Flags().IntVar(&req.KeepDaily, "keep-daily", 0, "keep the newest backup of each of the last N days with backups")
	cmd.Flags().BoolVar(&req.DryRun, "dry-run", false, "only say what would be deleted")
	addJSON(cmd, g)
	return cmd
}
