package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
)

// splitSnap reads VOLUME@SNAPSHOT.
func splitSnap(s string) (vol, snap string, err error) {
	vol, snap, ok := strings.Cut(s, "@")
	if !ok || vol == "" || snap == "" {
		return "", "", fmt.Errorf("%q: write VOLUME@SNAPSHOT, e.g. data@daily", s)
	}
	return vol, snap, nil
}

func newSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Create, list and delete crash-consistent volume snapshots (readable over NFS at /VOLUME@NAME)",
	}
	var name string
	create := &cobra.Command{
		Use:   "create VOLUME [--name NAME]",
		Short: "Snapshot a volume now: instant, every change before it wholly in, every later one out",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				name = time.Now().UTC().Format("20060102-150405")
			}
			return g.withClient(func(c *cluster.Client) error {
				s, err := c.CreateSnapshot(cmd.Context(), args[0], name)
				if err != nil {
					return fmt.Errorf("snapshot %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), s)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created snapshot %s@%s; read it over NFS at /%s@%s\n", s.Volume, s.Name, s.Volume, s.Name)
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "snapshot name (default: the UTC time, e.g. 20261125-154000)")
	addJSON(create, g)

	list := &cobra.Command{
		Use:   "list [VOLUME]",
		Short: "List snapshots with their creation time and the space each holds",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol := ""
			if len(args) == 1 {
				vol = args[0]
			}
			return g.withClient(func(c *cluster.Client) error {
				snaps, err := c.Snapshots(cmd.Context(), vol)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), snaps)
				}
				printSnapshots(cmd.OutOrStdout(), snaps)
				return nil
			})
		},
	}
	addJSON(list, g)

	del := &cobra.Command{
		Use:   "delete VOLUME@SNAPSHOT",
		Short: "Delete a snapshot and free the space only it held",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, snap, err := splitSnap(args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *cluster.Client) error {
				if err := c.DeleteSnapshot(cmd.Context(), vol, snap); err != nil {
					return fmt.Errorf("delete %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted snapshot %s\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func printSnapshots(w io.Writer, snaps []cluster.SnapshotInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tCREATED\tVOLUME USED\tINODES\tHELD\tNFS")
	for _, s := range snaps {
		held := formatSize(s.HeldBytes)
		if s.Missing {
			held = "MISSING (delete it)"
		}
		fmt.Fprintf(tw, "%s@%s\t%s\t%s\t%d\t%s\t/%s@%s\n", s.Volume, s.Name, s.Created.Local().Format(time.DateTime),
			formatSize(s.VolumeUsedBytes), s.VolumeInodes, held, s.Volume, s.Name)
	}
	tw.Flush()
}

func newVolumeCloneCmd(g *globals) *cobra.Command {
	var size string
	cmd := &cobra.Command{
		Use:   "clone VOLUME@SNAPSHOT NEWVOLUME [--size SIZE]",
		Short: "Make a new volume from a snapshot",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, snap, err := splitSnap(args[0])
			if err != nil {
				return err
			}
			var sz uint64
			if size != "" {
				if sz, err = parseSize(size); err != nil {
					return fmt.Errorf("--size: %w", err)
				}
			}
			return g.withClient(func(c *cluster.Client) error {
				v, err := c.CloneVolume(cmd.Context(), vol, snap, args[1], sz)
				if err != nil {
					return fmt.Errorf("clone %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created volume %s (%s) from %s\n", v.Name, formatSize(v.SizeBytes), args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "size limit of the new volume (default: the source's)")
	addJSON(cmd, g)
	return cmd
}

func newVolumeRevertCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "revert VOLUME SNAPSHOT [--force]",
		Short: "Put a snapshot's content back into its volume (refused while clients write, unless --force)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *cluster.Client) error {
				v, err := c.RevertVolume(cmd.Context(), args[0], args[1], force)
				if err != nil {
					return fmt.Errorf("revert %s to %s: %w", args[0], args[1], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s is back at snapshot %s (%s used)\n", v.Name, args[1], formatSize(v.UsedBytes))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "revert even if the volume was written to in the last 30 s")
	return cmd
}
