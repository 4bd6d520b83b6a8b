package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/join"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke join tokens (for keel join and keel tunnel join)",
	}
	var purpose, note string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create [--purpose node|client] [--ttl 1h]",
		Short: "Make a join token; it is printed once and the cluster keeps only its hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *cluster.Client) error {
				var t cluster.TokenInfo
				req := cluster.TokenRequest{Purpose: purpose, TTL: ttl.String(), Note: note}
				if err := c.Do(cmd.Context(), http.MethodPost, "/v1/tokens", jsonBodyOf(req), &t); err != nil {
					return fmt.Errorf("token create: %w", err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), t)
				}
				fmt.Fprintln(cmd.OutOrStdout(), t.Token)
				return nil
			})
		},
	}
	create.Flags().StringVar(&purpose, "purpose", join.PurposeNode, "node (keel join) or client (keel tunnel join)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	create.Flags().StringVar(&note, "note", "", "a note shown by token list")
	addJSON(create, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (ids, purposes, expiry; never the secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *cluster.Client) error {
				var ts []cluster.TokenInfo
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/tokens", nil, &ts); err != nil {
					return fmt.Errorf("token list: %w", err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), ts)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPURPOSE\tEXPIRES\tSTATE\tNOTE")
				for _, t := range ts {
					state := "valid"
					if t.Expired {
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Purpose, t.Expires.Local().Format(time.DateTime), state, t.Note)
				}
				return tw.Flush()
			})
		},
	}
	addJSON(list, g)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a join token at once, on every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *cluster.Client) error {
				var t cluster.TokenInfo
				if err := c.Do(cmd.Context(), http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil, &t); err != nil {
					return fmt.Errorf("token revoke: %w", err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), t)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s (%s)\n", t.ID, t.Purpose)
				return nil
			})
		},
	}
	addJSON(revoke, g)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func jsonBodyOf(v any) func() io.Reader {
	b, _ := json.Marshal(v)
	return func() io.Reader { return bytes.NewReader(b) }
}
