package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"keel/internal/config"
	"keel/internal/join"
	"keel/internal/tlsutil"
)

// initJoinFlags are `keel init`'s options for joining later machines.
type initJoinFlags struct {
	keepCAOffline bool
	tokenTTL      time.Duration
}

func (f *initJoinFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.keepCAOffline, "keep-ca-offline", false, "keep ca.key only in --dir (no joining: certificates are then issued on this machine)")
	cmd.Flags().DurationVar(&f.tokenTTL, "token-ttl", time.Hour, "lifetime of the join tokens printed")
}

// initTokens are the tokens `keel init` printed.
type initTokens struct {
	Node    string    `json:"node"`
	Client  string    `json:"client"`
	Expires time.Time `json:"expires"`
}

// issue makes a node token and a client token and leaves their records in
// every data node's directory, for the first leader to import.
func (f *initJoinFlags) issue(lay *config.Layout) (*initTokens, error) {
	if f.keepCAOffline {
		return nil, nil
	}
	caPEM, err := os.ReadFile(lay.CACert)
	if err != nil {
		return nil, err
	}
	fp, err := tlsutil.CAFingerprint(caPEM)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	nodeTok, nodeRec, err := join.New(join.PurposeNode, f.tokenTTL, fp, "made by keel init", now)
	if err != nil {
		return nil, err
	}
	clientTok, clientRec, err := join.New(join.PurposeClient, f.tokenTTL, fp, "made by keel init", now)
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent([]join.Record{nodeRec, clientRec}, "", "  ")
	for _, id := range lay.NodeIDs {
		cfg, err := config.Load(lay.NodeConfigs[id])
		if err != nil {
			return nil, err
		}
		if cfg.Node.Role != config.RoleData {
			continue
		}
		if err := tlsutil.WriteFile0600(filepath.Join(lay.NodeDir(id), config.FileJoinTokens), b); err != nil {
			return nil, err
		}
	}
	return &initTokens{Node: nodeTok.String(), Client: clientTok.String(), Expires: nodeRec.Expires}, nil
}

func (t *initTokens) print(w io.Writer, lay *config.Layout) {
	if t == nil {
		fmt.Fprintf(w, "Keep %s offline: it signs new certificates.\n", lay.CAKey)
		return
	}
	fmt.Fprintf(w, "\nOnce the cluster runs, more machines join with these tokens (valid until %s;\nmake more with `keel token create`):\n", t.Expires.Local().Format(time.DateTime))
	host := "NODE"
	if len(lay.NodeIDs) > 0 {
		if cfg, err := config.Load(lay.NodeConfigs[lay.NodeIDs[0]]); err == nil {
			host = cfg.Node.AdminAddr
		}
	}
	fmt.Fprintf(w, "  a storage node:  keel join %s --token %s [--witness]\n", host, t.Node)
	fmt.Fprintf(w, "  a client:        keel tunnel join %s --token %s\n", host, t.Client)
	fmt.Fprintf(w, "The data nodes hold the CA key (tls.ca_key) to sign joins; %s is its offline copy.\n", lay.CAKey)
}
