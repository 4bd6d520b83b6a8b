package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
)

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Create, list, resize and delete volumes (named filesystems with a size limit)",
	}
	var size string
	var force bool
	create := &cobra.Command{
		Use:   "create NAME --size 10GiB",
		Short: "Create a volume",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sz, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			return g.withClient(func(c *cluster.Client) error {
				v, err := c.CreateVolume(cmd.Context(), args[0], sz)
				if err != nil {
					return fmt.Errorf("create volume %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created volume %s (%s)\n", v.Name, formatSize(v.SizeBytes))
				return nil
			})
		},
	}
	create.Flags().StringVar(&size, "size", "10GiB", "size limit, e.g. 500MiB, 10GiB, 1TB")
	addJSON(create, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List volumes with their size, use and inode count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *cluster.Client) error {
				vols, err := c.Volumes(cmd.Context())
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), vols)
				}
				printVolumes(cmd.OutOrStdout(), vols)
				return nil
			})
		},
	}
	addJSON(list, g)

	resize := &cobra.Command{
		Use:   "resize NAME --size SIZE",
		Short: "Change a volume's size limit online (shrinking below what it holds is refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sz, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			return g.withClient(func(c *cluster.Client) error {
				v, err := c.ResizeVolume(cmd.Context(), args[0], sz)
				if err != nil {
					return fmt.Errorf("resize volume %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s is now %s (%s used)\n", v.Name, formatSize(v.SizeBytes), formatSize(v.UsedBytes))
				return nil
			})
		},
	}
	resize.Flags().StringVar(&size, "size", "", "new size limit, e.g. 20GiB")
	_ = resize.MarkFlagRequired("size")
	addJSON(resize, g)

	del := &cobra.Command{
		Use:   "delete NAME [--force]",
		Short: "Delete a volume (one that holds files only with --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *cluster.Client) error {
				if err := c.DeleteVolume(cmd.Context(), args[0], force); err != nil {
					return fmt.Errorf("delete volume %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted volume %s\n", args[0])
				return nil
			})
		},
	}
	del.Flags().BoolVar(&force, "force", false, "delete even if the volume holds files")
	cmd.AddCommand(create, list, resize, del, newVolumeExportCmd(g), newVolumeCloneCmd(g), newVolumeRevertCmd(g))
	return cmd
}
