package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
)

func newFailoverCmd(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "failover [--to NODE]",
		Short: "Move the active role (raft leadership) to another data node gracefully",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *cluster.Client) error {
				if err := c.Do(cmd.Context(), http.MethodPost, "/v1/transfer?to="+url.QueryEscape(to), nil, nil); err != nil {
					return fmt.Errorf("failover: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "leadership handed over; see `keel status`")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the data node to hand the active role to (default: the most up-to-date)")
	return cmd
}
