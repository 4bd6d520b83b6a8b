package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"keel/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print keel's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]any{"version": version.String(), "data_format": version.DataFormat, "go": runtime.Version()}
			if g.json {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keel %s (data format %d, %s)\n", version.String(), version.DataFormat, runtime.Version())
			return nil
		},
	}
	addJSON(cmd, g)
	return cmd
}
