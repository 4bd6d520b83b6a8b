package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result holds every figure of a run; it is what `keel bench store --json`
// prints. MB are 10^6 bytes.
type Result struct {
	Dir          string          `json:"dir"` // the run directory (removed afterwards)
	PayloadBytes uint64          `json:"payload_bytes"`
	Writers      int             `json:"writers"`
	RequestBytes int             `json:"request_bytes"`
	LatencyOps   int             `json:"latency_ops"`
	CPUs         int             `json:"cpus"`
	Disk         DiskResult      `json:"disk"`
	Clusters     []ClusterResult `json:"clusters"`
	Checks       []Check         `json:"checks"`
}

// ClusterResult is one cluster size's figures. CPU percentages are of one
// CPU over the throughput load; write bytes are counted from the start of
// the load until the nodes' writes settled (see Settle).
type ClusterResult struct {
	DataNodes            int          `json:"data_nodes"`
	Leader               string       `json:"leader"`
	PayloadBytes         uint64       `json:"payload_bytes"`
	Seconds              float64      `json:"seconds"`
	ThroughputMBps       float64      `json:"throughput_mb_per_s"`
	Write4K              Latency      `json:"write_4k"`
	Nodes                []NodeResult `json:"nodes"`
	WriteBytes           uint64       `json:"write_bytes"`         // all nodes together
	Amplification        float64      `json:"write_amplification"` // all nodes together, per payload byte
	Settle               Settle       `json:"settle"`
	ClientCPUPercent     float64      `json:"client_cpu_percent"`           // the benchmark process
	MachineBusyPercent   float64      `json:"machine_busy_percent"`         // of all CPUs together
	MachineIOWaitPercent float64      `json:"machine_iowait_percent"`       // of all CPUs together
	MachineStealPercent  float64      `json:"machine_steal_percent"`        // of all CPUs together
	DeviceWriteBytes     uint64       `json:"device_write_bytes,omitempty"` // the block device, all writers
	OthersDuringLoad     Others       `json:"others_during_load"`
	OthersDuringLatency  Others       `json:"others_during_latency"`
	CPUSecondsPerGB      float64      `json:"cpu_seconds_per_gb"`           // nodes and client together, per 10^9 payload bytes
	CPUBoundMBps         float64      `json:"cpu_bound_mb_per_s"`           // the throughput all CPUs would give at that cost
	LoadConnections      int64        `json:"load_connections"`             // HTTPS connections the client opened during the load
	LatencyConnections   int64        `json:"latency_connections"`          // … and during the 4 KiB test
	LoadBreakdown        *Breakdown   `json:"load_breakdown,omitempty"`     // nil if the leader changed
	Write4KBreakdown     *Breakdown   `json:"write_4k_breakdown,omitempty"` // nil if the leader changed
}

// NodeResult is one node process during the throughput load.
type NodeResult struct {
	ID            string            `json:"id"`
	PID           int               `json:"pid"`
	Leader        bool              `json:"leader"`
	WriteBytes    uint64            `json:"write_bytes"` // /proc/<pid>/io write_bytes − cancelled_write_bytes
	Amplification float64           `json:"write_amplification"`
	CPUPercent    float64           `json:"cpu_percent"`
	DiskUsage     map[string]uint64 `json:"disk_usage"` // bytes under the data directory, by subdirectory, after settling
}

// Settle says when the final write_bytes reading was taken.
type Settle struct {
	Seconds float64 `json:"seconds"` // after the last write was acknowledged
	Quiet   bool    `json:"quiet"`   // false: still growing when the wait gave up
}

// Check is one target compared with its measurement.
type Check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Pass   bool    `json:"pass"`
	Detail string  `json:"detail"`
}

// Targets of the design that Evaluate checks.
const (
	Target3NodeThroughput = 0.25 // × disk rate, at least
	Target1NodeThroughput = 0.5  // × disk rate, at least
	TargetAmplification   = 3.0  // per node, at most
	Target4KP50Ms         = 1.5  // 3 nodes, below
)

// addLoad fills in the figures of a throughput load of cr.PayloadBytes that
// took took, from the counters before it, right after it and once the
// nodes' writes settled, on a machine of cpus CPUs.
func (cr *ClusterResult) addLoad(took time.Duration, before, loaded, settled snapshot, cpus int) {
	cr.Seconds, cr.ThroughputMBps = took.Seconds(), mbPerSec(cr.PayloadBytes, took)
	wall := loaded.at.Sub(before.at)
	cr.WriteBytes = 0
	for i := range cr.Nodes {
		w := sub(settled.nodes[i].writeBytes, before.nodes[i].writeBytes)
		cr.Nodes[i].WriteBytes = w
		cr.Nodes[i].Amplification = ratio(float64(w), float64(cr.PayloadBytes))
		cr.Nodes[i].CPUPercent = percent(loaded.nodes[i].cpu-before.nodes[i].cpu, wall)
		cr.WriteBytes += w
	}
	cr.Amplification = ratio(float64(cr.WriteBytes), float64(cr.PayloadBytes))
	cr.ClientCPUPercent = percent(loaded.self.cpu-before.self.cpu, wall)
	spent := loaded.self.cpu - before.self.cpu
	for i := range cr.Nodes {
		spent += loaded.nodes[i].cpu - before.nodes[i].cpu
	}
	cr.CPUSecondsPerGB = ratio(spent.Seconds(), float64(cr.PayloadBytes)/1e9)
	cr.CPUBoundMBps = ratio(float64(cpus)*1000, cr.CPUSecondsPerGB)
	total := loaded.sys.total - before.sys.total
	cr.MachineBusyPercent = percent(loaded.sys.busy-before.sys.busy, total)
	cr.MachineIOWaitPercent = percent(loaded.sys.iowait-before.sys.iowait, total)
	cr.MachineStealPercent = percent(loaded.sys.steal-before.sys.steal, total)
	if before.device != 0 {
		cr.DeviceWriteBytes = sub(settled.device, before.device)
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func percent(part, whole time.Duration) float64 { return 100 * ratio(float64(part), float64(whole)) }

// Evaluate compares r with the targets: throughput with 3 and 1 data nodes
// against the disk rate, each cluster's worst per-node write amplification,
// and the 3-node 4 KiB p50 latency. A cluster size r lacks is not checked.
func Evaluate(r *Result) []Check {
	var out []Check
	if c := r.cluster(3); c != nil {
		out = append(out, throughputCheck(c, r.Disk.SeqMBps, Target3NodeThroughput))
	}
	if c := r.cluster(1); c != nil {
		out = append(out, throughputCheck(c, r.Disk.SeqMBps, Target1NodeThroughput))
	}
	for i := range r.Clusters {
		out = append(out, amplificationCheck(&r.Clusters[i]))
	}
	if c := r.cluster(3); c != nil {
		p50 := c.Write4K.P50Ms
		out = append(out, Check{Name: "3-node 4 KiB write p50 < 1.5 ms", Value: p50, Limit: Target4KP50Ms,
			Pass: p50 < Target4KP50Ms, Detail: fmt.Sprintf("%.3f ms (p99 %.3f ms)", p50, c.Write4K.P99Ms)})
	}
	return out
}

func (r *Result) cluster(dataNodes int) *ClusterResult {
	for i := range r.Clusters {
		if r.Clusters[i].DataNodes == dataNodes {
			return &r.Clusters[i]
		}
	}
	return nil
}

func throughputCheck(c *ClusterResult, diskMBps, limit float64) Check {
	v := ratio(c.ThroughputMBps, diskMBps)
	return Check{Name: fmt.Sprintf("%d-node throughput ≥ %g × disk", c.DataNodes, limit), Value: v, Limit: limit,
		Pass: diskMBps > 0 && v >= limit, Detail: fmt.Sprintf("%.2f × (%.1f of %.1f MB/s)", v, c.ThroughputMBps, diskMBps)}
}

func amplificationCheck(c *ClusterResult) Check {
	worst := NodeResult{}
	for _, n := range c.Nodes {
		if n.Amplification >= worst.Amplification {
			worst = n
		}
	}
	detail := fmt.Sprintf("worst %s %.2f", worst.ID, worst.Amplification)
	if !c.Settle.Quiet {
		detail += " (writes had not settled; more may follow)"
	}
	return Check{Name: fmt.Sprintf("%d-node write amplification ≤ %g per node", c.DataNodes, TargetAmplification),
		Value: worst.Amplification, Limit: TargetAmplification, Pass: worst.Amplification <= TargetAmplification, Detail: detail}
}

// WriteText prints r as a table, per-process details and the target checks.
func WriteText(w io.Writer, r *Result) {
	fmt.Fprintf(w, "keel bench store: %s payload from %d writers in %s PUTs; %d sequential 4 KiB writes; %d CPUs\n",
		formatBytes(r.PayloadBytes), r.Writers, formatBytes(uint64(r.RequestBytes)), r.LatencyOps, r.CPUs)
	fmt.Fprintf(w, "run directory %s (removed); MB = 10^6 bytes\n\n", r.Dir)
	writeSummary(w, r)
	fmt.Fprintf(w, "\nraw disk: %s in %.1f s; others, in %% of one CPU: %s\n", formatBytes(r.Disk.SeqBytes), r.Disk.SeqSeconds, othersText(r.Disk.Others))
	for i := range r.Clusters {
		writeDetail(w, &r.Clusters[i], r.CPUs)
	}
	fmt.Fprintln(w, "\ntargets (reported, not asserted):")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s  %-42s %s\n", passWord(c.Pass), c.Name, c.Detail)
	}
	if worst := r.busiestOthers(); worst >= othersWarnPct {
		fmt.Fprintf(w, "\nWARNING: other processes used up to %.0f %% of one CPU during a phase: the figures are lower than keel alone would reach.\n", worst)
	}
}

// busiestOthers is the largest CPU share other processes took in any phase.
func (r *Result) busiestOthers() float64 {
	worst := r.Disk.Others.ProcessesPercent
	for _, c := range r.Clusters {
		worst = max(worst, c.OthersDuringLoad.ProcessesPercent, c.OthersDuringLatency.ProcessesPercent)
	}
	return worst
}

func othersText(o Others) string {
	var top []string
	for _, p := range o.Top {
		name := p.Name
		if p.Kernel {
			name = "[" + name + "]"
		}
		top = append(top, fmt.Sprintf("%s %.0f %%", name, p.CPUPercent))
	}
	s := fmt.Sprintf("processes %.0f %%, kernel threads %.0f %%", o.ProcessesPercent, o.KernelThreadsPercent)
	if len(top) > 0 {
		s += " (" + strings.Join(top, ", ") + ")"
	}
	return s
}

func writeSummary(w io.Writer, r *Result) {
	const row = "%-22s %10s %7s %10s %10s   %-24s %s\n"
	fmt.Fprintf(w, row, "", "write MB/s", "× disk", "4K p50 ms", "4K p99 ms", "write amp per node", "amp sum")
	fmt.Fprintf(w, row, "raw disk (fdatasync)", fmt.Sprintf("%.1f", r.Disk.SeqMBps), "1.00",
		fmt.Sprintf("%.3f", r.Disk.Sync4K.P50Ms), fmt.Sprintf("%.3f", r.Disk.Sync4K.P99Ms), "-", "-")
	for _, c := range r.Clusters {
		var amps []string
		for _, n := range c.Nodes {
			amps = append(amps, fmt.Sprintf("%s %.2f", n.ID, n.Amplification))
		}
		fmt.Fprintf(w, row, clusterLabel(c.DataNodes), fmt.Sprintf("%.1f", c.ThroughputMBps),
			fmt.Sprintf("%.2f", ratio(c.ThroughputMBps, r.Disk.SeqMBps)),
			fmt.Sprintf("%.3f", c.Write4K.P50Ms), fmt.Sprintf("%.3f", c.Write4K.P99Ms),
			strings.Join(amps, "  "), fmt.Sprintf("%.2f", c.Amplification))
	}
}

func writeDetail(w io.Writer, c *ClusterResult, cpus int) {
	settled := "settled"
	if !c.Settle.Quiet {
		settled = "NOT settled: still growing, figures are as of then"
	}
	fmt.Fprintf(w, "\n%s: %s in %.1f s; write_bytes read %.1f s after the last write (%s)\n",
		clusterLabel(c.DataNodes), formatBytes(c.PayloadBytes), c.Seconds, c.Settle.Seconds, settled)
	fmt.Fprintf(w, "  CPU is %% of one CPU during the load (%d CPUs = %d %%)\n", cpus, 100*cpus)
	for _, n := range c.Nodes {
		role := "follower"
		if n.Leader {
			role = "leader"
		}
		fmt.Fprintf(w, "  %-4s %-8s pid %-7d wrote %10s  amp %5.2f  cpu %4.0f %%  on disk: %s\n",
			n.ID, role, n.PID, formatBytes(n.WriteBytes), n.Amplification, n.CPUPercent, usageText(n.DiskUsage))
	}
	fmt.Fprintf(w, "  %-13s %-36s cpu %4.0f %%\n", "bench client", "(HTTPS + TLS, load generator)", c.ClientCPUPercent)
	fmt.Fprintf(w, "  CPU cost: %.1f CPU-seconds per GB of payload (nodes + client): %d CPUs at that cost give at most %.0f MB/s\n",
		c.CPUSecondsPerGB, cpus, c.CPUBoundMBps)
	fmt.Fprintf(w, "  machine, of all CPUs: busy %.0f %% (steal %.0f %%), iowait %.0f %%", c.MachineBusyPercent, c.MachineStealPercent, c.MachineIOWaitPercent)
	if c.DeviceWriteBytes > 0 {
		fmt.Fprintf(w, "; block device wrote %s (%.2f × payload, every process and the filesystem journal)",
			formatBytes(c.DeviceWriteBytes), ratio(float64(c.DeviceWriteBytes), float64(c.PayloadBytes)))
	}
	fmt.Fprintf(w, "\n  others during the load, in %% of one CPU: %s\n", othersText(c.OthersDuringLoad))
	if b := c.LoadBreakdown; b != nil {
		fmt.Fprintf(w, "  leader, per %s PUT: %.1f log entries in %.2f raft proposals of %.2f ms mean each; %.2f apply batches of %.2f ms\n",
			formatBytes(c.PayloadBytes/uint64(max(1, b.Puts))), b.EntriesPerPut, b.ProposalsPerPut, b.ProposalMeanMs, b.ApplyBatchesPerPut, b.ApplyBatchMeanMs)
	}
	fmt.Fprintf(w, "  4 KiB PUTs: mean %.3f ms, max %.3f ms", c.Write4K.MeanMs, c.Write4K.MaxMs)
	if b := c.Write4KBreakdown; b != nil {
		fmt.Fprintf(w, " = read index %.2f × %.3f ms + raft proposals %.2f × %.3f ms (%.2f apply batches of %.3f ms within) + rest %.3f ms (HTTPS, handler)",
			b.ReadIndexPerPut, b.ReadIndexMeanMs, b.ProposalsPerPut, b.ProposalMeanMs, b.ApplyBatchesPerPut, b.ApplyBatchMeanMs, b.RestMs)
	}
	fmt.Fprintf(w, "\n  others during the 4 KiB test: %s\n", othersText(c.OthersDuringLatency))
	fmt.Fprintf(w, "  HTTPS connections opened: %d during the load, %d during the 4 KiB test\n", c.LoadConnections, c.LatencyConnections)
}

// usageText lists the directories holding at least 1 MiB, largest first.
func usageText(u map[string]uint64) string {
	dirs := make([]string, 0, len(u))
	for d, n := range u {
		if n >= 1<<20 {
			dirs = append(dirs, d)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Or(cmp.Compare(u[b], u[a]), cmp.Compare(a, b)) })
	var parts []string
	for _, d := range dirs {
		parts = append(parts, d+" "+formatBytes(u[d]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func clusterLabel(n int) string {
	if n == 1 {
		return "keel, 1 data node"
	}
	return fmt.Sprintf("keel, %d data nodes", n)
}

func passWord(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
