package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
)

// splitTarget reads VOLUME:/path.
func splitTarget(s string) (vol, path string, err error) {
	vol, path, ok := strings.Cut(s, ":")
	if !ok || vol == "" {
		return "", "", fmt.Errorf("%q: write VOLUME:/path, e.g. data:/reports/q3.csv", s)
	}
	if path == "" {
		path = "/"
	}
	return vol, path, nil
}

func newFsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fs",
		Short: "Put, get, list and remove files in a volume through the admin API (no NFS client needed)",
	}
	var mkdirs bool
	put := &cobra.Command{
		Use:   "put LOCALFILE|- VOLUME:/path",
		Short: "Copy a local file (or stdin) into a volume, replacing what was there",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, path, err := splitTarget(args[1])
			if err != nil {
				return err
			}
			var data []byte
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			return g.withClient(func(c *cluster.Client) error {
				if err := c.PutFile(cmd.Context(), vol, path, data, mkdirs); err != nil {
					return fmt.Errorf("put %s: %w", args[1], err)
				}
				return nil
			})
		},
	}
	put.Flags().BoolVarP(&mkdirs, "parents", "p", false, "create missing parent directories")
	cat := &cobra.Command{
		Use:   "cat VOLUME:/path",
		Short: "Print a file's contents",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, path, err := splitTarget(args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *cluster.Client) error {
				b, err := c.GetFile(cmd.Context(), vol, path)
				if err != nil {
					return fmt.Errorf("cat %s: %w", args[0], err)
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			})
		},
	}
	ls := &cobra.Command{
		Use:   "ls VOLUME:/dir",
		Short: "List a directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, path, err := splitTarget(args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *cluster.Client) error {
				ents, err := c.List(cmd.Context(), vol, path)
				if err != nil {
					return fmt.Errorf("ls %s: %w", args[0], err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), ents)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, e := range ents {
					fmt.Fprintf(tw, "%04o\t%s\t%d\t%s\t%s\n", e.Mode, e.Type, e.Size, e.Mtime.Local().Format(time.DateTime), e.Name)
				}
				return tw.Flush()
			})
		},
	}
	addJSON(ls, g)
	rm := &cobra.Command{
		Use:   "rm VOLUME:/path",
		Short: "Remove a file or an empty directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol, path, err := splitTarget(args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *cluster.Client) error {
				return c.Remove(cmd.Context(), vol, path)
			})
		},
	}
	cmd.AddCommand(put, cat, ls, rm)
	return cmd
}
