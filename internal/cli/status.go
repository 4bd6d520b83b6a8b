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

func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node's role, raft position, lag and health, and the volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(func(c *cluster.Client) error {
				st := c.Status(cmd.Context(), 3*time.Second)
				if g.json {
					return printJSON(cmd.OutOrStdout(), st)
				}
				printStatus(cmd.OutOrStdout(), st)
				if !st.Healthy {
					return fmt.Errorf("cluster is not healthy")
				}
				return nil
			})
		},
	}
	addJSON(cmd, g)
	return cmd
}

func printStatus(w io.Writer, st cluster.Status) {
	health := "healthy"
	if !st.Healthy {
		health = "NOT HEALTHY"
	}
	leader := st.Leader
	if leader == "" {
		leader = "none (no quorum?)"
	}
	fmt.Fprintf(w, "cluster %s  leader %s  term %d  %s\n", st.ClusterID, leader, st.Term, health)
	var tunnels []string
	for _, m := range st.Nodes {
		if m.Node == nil {
			continue
		}
		if a := m.Node.Active; a != nil {
			took := ""
			if a.TakeoverTime != "" {
				took = ", take-over took " + a.TakeoverTime
			}
			fmt.Fprintf(w, "active   %s since %s (%s%s)\n", m.ID, a.Since.Local().Format(time.DateTime), a.Reason, took)
			for _, r := range m.Node.Resources {
				line := fmt.Sprintf("resource %s: %s", r.Name, r.State)
				if r.LastError != "" {
					line += " — " + shorten(r.LastError, 80)
				}
				fmt.Fprintln(w, line)
			}
		}
		for _, t := range m.Node.Tunnels {
			tunnels = append(tunnels, fmt.Sprintf("%s from %s → %s (since %s)", t.Client, t.Remote, m.ID, t.Since.Local().Format(time.TimeOnly)))
		}
	}
	for _, m := range st.Nodes {
		if m.Node == nil {
			continue
		}
		if sd := m.Node.Seed; sd != nil {
			image := sd.BackupID
			if sd.Cluster != "" && sd.Cluster != st.ClusterID {
				image += " of cluster " + sd.Cluster
			}
			fmt.Fprintf(w, "rebuilt  %s seeded from %s (raft index %d, %s from %s in %s, %s); then %s from the leader\n",
				m.ID, image, sd.RaftIndex, formatSize(sd.Bytes), sd.From, seconds(sd.Seconds),
				sd.At.Local().Format(time.DateTime), formatSize(m.Node.Raft.ReceivedBytes))
		}
		if in := m.Node.Raft.SnapshotInstall; in != nil {
			of := ""
			if ld := leaderOf(st); ld != nil && ld.Raft.SnapshotBytes > 0 && in.Phase == "receive" {
				of = " of about " + formatSize(uint64(ld.Raft.SnapshotBytes))
			}
			fmt.Fprintf(w, "resync   %s installs the leader's snapshot (raft index %d): %s, %s received%s, for %s\n",
				m.ID, in.SnapshotIndex, in.Phase, formatSize(uint64(in.ReceivedBytes)), of, time.Since(in.Since).Round(100*time.Millisecond))
		}
		for _, b := range m.Node.Backups {
			last := "never"
			if !b.LastSuccess.IsZero() {
				last = b.LastSuccess.Local().Format(time.DateTime) + " (" + b.LastBackup + ")"
			}
			line := fmt.Sprintf("backup   %s → %s every %s: last success %s", b.Name, b.To, b.Interval, last)
			if b.LastResult != "" {
				line += "; last run: " + shorten(b.LastResult, 80)
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "tunnels  %d\n", len(tunnels))
	for _, t := range tunnels {
		fmt.Fprintln(w, "  "+t)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tPID\tRAFT\tADMIN\tCOMMIT\tAPPLIED\tLAG\tRECEIVED\tHEALTH")
	for _, m := range st.Nodes {
		if m.Node == nil {
			fmt.Fprintf(tw, "%s\t%s\tunreachable\t-\t-\t%s\t-\t-\t-\t-\t%s\n", m.ID, m.Role, m.AdminAddr, shorten(m.Error, 60))
			continue
		}
		n := m.Node
		lag := "-"
		if st.Leader != "" {
			lag = fmt.Sprintf("%d (%s)", m.LagIndex, formatSize(m.LagBytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", n.ID, n.Role, n.Raft.State, n.PID, n.RaftAddr, n.AdminAddr,
			n.Raft.CommitIndex, n.Raft.AppliedIndex, lag, formatSize(n.Raft.ReceivedBytes), n.Health)
	}
	tw.Flush()
	if len(st.Volumes) > 0 {
		fmt.Fprintln(w)
		printVolumes(w, st.Volumes)
	}
}

func printVolumes(w io.Writer, vols []cluster.VolumeInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSIZE\tUSED\tUSE%\tINODES\tCREATED\tEXPORT")
	for _, v := range vols {
		pct := 0.0
		if v.SizeBytes > 0 {
			pct = 100 * float64(v.UsedBytes) / float64(v.SizeBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%d\t%s\t/%s %s\n", v.Name, formatSize(v.SizeBytes), formatSize(v.UsedBytes), pct, v.Inodes,
			v.Created.Local().Format(time.DateTime), v.Name, exportLine(v.Export))
	}
	tw.Flush()
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// leaderOf returns the leader's node status, if it answered.
func leaderOf(st cluster.Status) *cluster.NodeStatus {
	for _, m := range st.Nodes {
		if m.Node != nil && m.ID == st.Leader {
			return m.Node
		}
	}
	return nil
}
