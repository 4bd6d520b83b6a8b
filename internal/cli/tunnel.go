package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"keel/internal/cluster"
	"keel/internal/tunnel"
)

func newTunnelCmd(g *globals) *cobra.Command {
	var listen, statusAddr string
	cmd := &cobra.Command{
		Use:   "tunnel --cluster client.yaml [--listen 127.0.0.1:2049]",
		Short: "Run a local NFS endpoint that follows the cluster's active node (VTun's role)",
		Long: `tunnel runs on a client machine. It listens for NFS clients at --listen and forwards
their calls over mutually authenticated TLS (the client certificate from keel init) to
whichever node is active; when that changes it reconnects and resends what was in
flight, so clients see a pause, not an error.

  keel tunnel --cluster /etc/keel/client.yaml --listen 127.0.0.1:2049
  mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=2049,nolock,hard 127.0.0.1:/data /mnt/data
  keel tunnel status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cc, err := g.clientConfig()
			if err != nil {
				return err
			}
			if err := cc.Validate(); err != nil {
				return err
			}
			tc, err := cluster.TLSConfig(cc)
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, "info", "text")
			t := tunnel.New(cc.Peers, tc, log)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (another NFS server or tunnel there? pick another --listen)", listen, err)
			}
			if statusAddr != "" {
				if err := serveTunnelStatus(cmd.Context(), statusAddr, t); err != nil {
					return err
				}
			}
			log.Info("tunnel listening", "listen", ln.Addr().String(), "status", statusAddr)
			return t.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&g.cfgPath, "cluster", "", "the cluster's client.yaml (same as --config)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:2049", "local address NFS clients connect to")
	cmd.Flags().StringVar(&statusAddr, "status-addr", "127.0.0.1:2050", "local address of the tunnel's status and /metrics (empty: none)")

	var statusJSON bool
	status := &cobra.Command{
		Use:   "status [--status-addr 127.0.0.1:2050]",
		Short: "Show a running tunnel's active node, reconnects and calls in flight",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+statusAddr+"/status", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("no tunnel answers at %s (is `keel tunnel` running with this --status-addr?): %w", statusAddr, err)
			}
			defer resp.Body.Close()
			var st tunnel.Status
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			if statusJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			active := st.ActiveNode
			if active == "" {
				active = "none yet"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "active node  %s (%s) since %s\nclients      %d\nin flight    %d\ncalls        %d\nreconnects   %d\nresent       %d\n",
				active, st.ActiveAddr, st.Since.Local().Format(time.DateTime), st.Clients, st.InFlight, st.Calls, st.Reconnects, st.Resent)
			return nil
		},
	}
	status.Flags().StringVar(&statusAddr, "status-addr", "127.0.0.1:2050", "the tunnel's status address")
	status.Flags().BoolVar(&statusJSON, "json", false, "print JSON")
	cmd.AddCommand(status, newTunnelJoinCmd(g), newTunnelVerifyCmd())
	return cmd
}

// serveTunnelStatus serves /status (JSON) and /metrics on a local address.
func serveTunnelStatus(ctx context.Context, addr string, t *tunnel.Tunnel) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tunnel status on %s: %w (pass another --status-addr, or empty to disable)", addr, err)
	}
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func(tunnel.Status) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "tunnel", Name: name, Help: help},
			func() float64 { return f(t.Status()) }))
	}
	gauge("clients", "NFS client connections.", func(s tunnel.Status) float64 { return float64(s.Clients) })
	gauge("in_flight", "Calls sent and not yet answered.", func(s tunnel.Status) float64 { return float64(s.InFlight) })
	gauge("calls_total", "Calls forwarded.", func(s tunnel.Status) float64 { return float64(s.Calls) })
	gauge("reconnects_total", "Reconnections to an active node.", func(s tunnel.Status) float64 { return float64(s.Reconnects) })
	gauge("resent_total", "Calls sent again after a reconnect.", func(s tunnel.Status) float64 { return float64(s.Resent) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(t.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "tunnel status:", err)
		}
	}()
	return nil
}
