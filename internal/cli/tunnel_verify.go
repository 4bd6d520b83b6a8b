package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	nfsv3 "github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"keel/internal/nfs/nfsclient"
)

// newTunnelVerifyCmd checks a tunnel end to end with keel's own NFSv3
// client, as a mount would use it: MOUNT, then CREATE + WRITE or LOOKUP +
// READ. keel deploy runs it on client machines (which need no NFS tools).
func newTunnelVerifyCmd() *cobra.Command {
	var listen, volume, put, get, content string
	cmd := &cobra.Command{
		Use:   "verify --volume V (--put NAME --content TEXT | --get NAME)",
		Short: "Write or read a file through the local tunnel over NFSv3 (keel deploy's check)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (put == "") == (get == "") {
				return errors.New("tunnel verify: give exactly one of --put NAME or --get NAME")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			c, err := nfsclient.Dial(ctx, listen, nfsclient.Options{Machine: "keel-verify"})
			if err != nil {
				return fmt.Errorf("tunnel verify: no NFS endpoint at %s (is keel tunnel running?): %w", listen, err)
			}
			defer c.Close()
			root, st, err := c.Mount(ctx, "/"+volume)
			if err != nil || st != 0 {
				return fmt.Errorf("tunnel verify: MOUNT /%s: status %d %v", volume, st, err)
			}
			if put != "" {
				mode := uint32(0o644)
				res, st, err := c.Create(ctx, root, put, nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
				if err != nil || st != nfsv3.NFS3_OK || nfsclient.Handle(res.Obj) == nil {
					return fmt.Errorf("tunnel verify: CREATE %s: status %d %v", put, st, err)
				}
				if err := c.WriteFile(ctx, nfsclient.Handle(res.Obj), []byte(content), 0); err != nil {
					return fmt.Errorf("tunnel verify: WRITE %s: %w", put, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote /%s/%s (%d bytes) through %s\n", volume, put, len(content), listen)
				return nil
			}
			h, lst, err := c.LookupPath(ctx, root, get)
			if err != nil || lst != nfsv3.NFS3_OK {
				return fmt.Errorf("tunnel verify: LOOKUP %s: status %d %v", get, lst, err)
			}
			data, err := c.ReadFile(ctx, h, 0, 16<<20)
			if err != nil {
				return fmt.Errorf("tunnel verify: READ %s: %w", get, err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:2049", "the tunnel's local NFS address")
	cmd.Flags().StringVar(&volume, "volume", "data", "the volume (export /NAME)")
	cmd.Flags().StringVar(&put, "put", "", "create NAME in the volume's root with --content")
	cmd.Flags().StringVar(&content, "content", "", "what --put writes")
	cmd.Flags().StringVar(&get, "get", "", "print the content of NAME in the volume's root")
	return cmd
}
