package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// NFSResult holds every figure of a `keel bench nfs` run; it is what
// `--json` prints. MiB are 2^20 bytes.
type NFSResult struct {
	Dir       string            `json:"dir"` // the run directory (removed afterwards)
	CPUs      int               `json:"cpus"`
	SizeBytes uint64            `json:"size_bytes"`
	Files     int               `json:"files"`
	Workers   int               `json:"metadata_connections"`
	Warmup    bool              `json:"warmup"` // one unmeasured copy in and out first, on every server
	Servers   []NFSServerResult `json:"servers"`
	Checks    []Check           `json:"checks"`
}

// NFSServerResult is one server's figures.
type NFSServerResult struct {
	Kind         string      `json:"kind"` // keel-1, keel-3, ganesha
	Name         string      `json:"name"`
	Version      string      `json:"version,omitempty"`
	NotInstalled string      `json:"not_installed,omitempty"`
	Error        string      `json:"error,omitempty"` // Ganesha failed: the run went on without it
	Durability   string      `json:"durability"`      // what an acknowledged write means on it
	Probe        ProbeResult `json:"probe"`
	Write        Phase       `json:"write"`
	Read         Phase       `json:"read"`
	Meta         MetaResult  `json:"metadata"`
	MetaCPU      Phase       `json:"metadata_cpu"`
}

// Phase is one load's wall time, rate and CPU use; CPU percentages are of
// one CPU over the load.
type Phase struct {
	Error                string       `json:"error,omitempty"` // the load failed: no figures
	Note                 string       `json:"note,omitempty"`  // e.g. keel's leader moved during the load
	Seconds              float64      `json:"seconds"`
	MiBps                float64      `json:"mib_per_s,omitempty"`
	Servers              []ProcessCPU `json:"server_cpu"` // the server's processes
	Client               string       `json:"client"`     // nfs-cp or the Go client (this process)
	ClientCPUPercent     float64      `json:"client_cpu_percent"`
	MachineBusyPercent   float64      `json:"machine_busy_percent"`   // of all CPUs together
	MachineIOWaitPercent float64      `json:"machine_iowait_percent"` // of all CPUs together
	Others               Others       `json:"others"`
}

// measured says the server ran (its loads may still have failed).
func (s *NFSServerResult) measured() bool { return s.NotInstalled == "" && s.Error == "" }

// figure returns a load's figure and whether there is one.
func (s *NFSServerResult) figure(load string) (float64, bool) {
	if s == nil || !s.measured() {
		return 0, false
	}
	switch load {
	case "write":
		return s.Write.MiBps, s.Write.Error == ""
	case "read":
		return s.Read.MiBps, s.Read.Error == ""
	default:
		return s.Meta.OpsPerSec, s.MetaCPU.Error == ""
	}
}

// Targets of the design that EvaluateNFS checks.
const (
	Target3NodeWriteVsGanesha = 0.35 // × Ganesha's write MiB/s, at least
)

func (r *NFSResult) server(kind string) *NFSServerResult {
	for i := range r.Servers {
		if r.Servers[i].Kind == kind {
			return &r.Servers[i]
		}
	}
	return nil
}

// EvaluateNFS compares keel with Ganesha: 1 data node at least as fast on
// write, read and metadata, 3 data nodes writing at least 0.35 × as fast.
// Without Ganesha's figures no check passes.
func EvaluateNFS(r *NFSResult) []Check {
	k1, k3, g := r.server(KindKeel1), r.server(KindKeel3), r.server(KindGanesha)
	var out []Check
	vs := func(name string, k *NFSServerResult, load string, factor float64, unit string) {
		c := Check{Name: name, Limit: factor}
		kv, kok := k.figure(load)
		gv, gok := g.figure(load)
		switch {
		case !kok:
			c.Detail = "no keel figure"
		case !gok:
			c.Detail = "no Ganesha figure: " + ganeshaWhy(g, load)
		default:
			c.Value = ratio(kv, gv)
			c.Pass = gv > 0 && kv >= factor*gv
			c.Detail = fmt.Sprintf("%.2f × (%.1f vs %.1f %s)", c.Value, kv, gv, unit)
		}
		out = append(out, c)
	}
	vs("1-node write ≥ Ganesha", k1, "write", 1, "MiB/s")
	vs("1-node read ≥ Ganesha", k1, "read", 1, "MiB/s")
	vs("1-node metadata ≥ Ganesha", k1, "meta", 1, "ops/s")
	vs(fmt.Sprintf("3-node write ≥ %g × Ganesha", Target3NodeWriteVsGanesha), k3, "write", Target3NodeWriteVsGanesha, "MiB/s")
	return out
}

func ganeshaWhy(g *NFSServerResult, load string) string {
	switch {
	case g == nil:
		return "not run"
	case g.NotInstalled != "":
		return g.NotInstalled
	case g.Error != "":
		return firstLine(g.Error)
	default:
		return "the " + load + " load failed"
	}
}

// durabilityText is what an acknowledged WRITE meant on s: the committed
// level its replies gave, then what that level meant there.
func durabilityText(s *NFSServerResult) string {
	if s.Probe.Error != "" || len(s.Probe.Answered) == 0 {
		return s.Durability
	}
	var levels []string
	for k := range s.Probe.Answered {
		levels = append(levels, k)
	}
	slices.Sort(levels)
	return strings.Join(levels, "+") + ": " + s.Durability
}

// cell is a load's figure in the table, or why there is none.
func cell(ph Phase, v float64, format string) string {
	switch {
	case ph.Error != "":
		return "failed"
	case ph.Note != "":
		return fmt.Sprintf(format, v) + "*"
	default:
		return fmt.Sprintf(format, v)
	}
}

// WriteNFSText prints r: one row per server, what nfs-cp asked of each,
// the CPU of every process per load, and the target checks.
func WriteNFSText(w io.Writer, r *NFSResult) {
	fmt.Fprintf(w, "keel bench nfs: %s copied in and out with nfs-cp (libnfs); %d × CREATE + GETATTR + REMOVE from %d connections of keel's Go NFSv3 client; %d CPUs\n",
		formatBytes(r.SizeBytes), r.Files, r.Workers, r.CPUs)
	warm := "no warm-up"
	if r.Warmup {
		warm = "after one unmeasured copy in and out on each server"
	}
	fmt.Fprintf(w, "every server on the disk of %s (removed); %s; keel's client talks to the leader's NFS port; MiB = 2^20 bytes; an op is one NFS call\n\n", r.Dir, warm)
	const row = "%-32s %11s %10s %10s   %s\n"
	fmt.Fprintf(w, row, "", "write MiB/s", "read MiB/s", "meta ops/s", "an acknowledged WRITE is")
	for i := range r.Servers {
		s := &r.Servers[i]
		switch {
		case s.NotInstalled != "":
			fmt.Fprintf(w, row, s.Name, "-", "-", "-", s.NotInstalled)
		case s.Error != "":
			fmt.Fprintf(w, row, s.Name, "-", "-", "-", "failed: "+firstLine(s.Error))
		default:
			fmt.Fprintf(w, row, s.Name, cell(s.Write, s.Write.MiBps, "%.1f"), cell(s.Read, s.Read.MiBps, "%.1f"),
				cell(s.MetaCPU, s.Meta.OpsPerSec, "%.0f"), durabilityText(s))
		}
	}
	for i := range r.Servers {
		s := &r.Servers[i]
		for _, l := range []struct {
			name string
			ph   Phase
		}{{"write", s.Write}, {"read", s.Read}, {"metadata", s.MetaCPU}} {
			if l.ph.Error != "" {
				fmt.Fprintf(w, "  %s, %s failed: %s\n", s.Name, l.name, l.ph.Error)
			} else if l.ph.Note != "" {
				fmt.Fprintf(w, "  * %s, %s: %s\n", s.Name, l.name, l.ph.Note)
			}
		}
	}
	fmt.Fprintf(w, "\nwhat nfs-cp sent and each server answered (a %s copy through a counting proxy):\n", formatBytes(probeSize))
	for i := range r.Servers {
		if s := &r.Servers[i]; s.measured() {
			fmt.Fprintf(w, "  %-32s %s\n", s.Name, s.Probe.Text())
		}
	}
	fmt.Fprintf(w, "\nCPU in %% of one CPU (%d CPUs = %d %%) during each load; machine figures are of all CPUs:\n", r.CPUs, 100*r.CPUs)
	for i := range r.Servers {
		s := &r.Servers[i]
		if !s.measured() {
			continue
		}
		fmt.Fprintf(w, "  %s\n", s.Name)
		writePhase(w, "write", s.Write, serverCPUText(s.Write, r.SizeBytes))
		writePhase(w, "read", s.Read, serverCPUText(s.Read, r.SizeBytes))
		writePhase(w, "meta", s.MetaCPU, fmt.Sprintf("per call, p50/p99 ms: CREATE %.2f/%.2f, GETATTR %.2f/%.2f, REMOVE %.2f/%.2f",
			s.Meta.Create.P50Ms, s.Meta.Create.P99Ms, s.Meta.Getattr.P50Ms, s.Meta.Getattr.P99Ms,
			s.Meta.Remove.P50Ms, s.Meta.Remove.P99Ms))
	}
	fmt.Fprintln(w, "\ntargets (reported, not asserted):")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s  %-30s %s\n", passWord(c.Pass), c.Name, c.Detail)
	}
	worst := 0.0
	for _, s := range r.Servers {
		worst = max(worst, s.Write.Others.ProcessesPercent, s.Read.Others.ProcessesPercent, s.MetaCPU.Others.ProcessesPercent)
	}
	if worst >= othersWarnPct {
		fmt.Fprintf(w, "\nWARNING: other processes used up to %.0f %% of one CPU during a load: the figures are lower than on an idle machine.\n", worst)
	}
}

// ServerCPUSecondsPerGiB is the CPU time the server's processes took per
// GiB the load moved: a cost that depends less on how busy the machine was
// than MiB/s does.
func (p Phase) ServerCPUSecondsPerGiB(bytes uint64) float64 {
	var pct float64
	for _, s := range p.Servers {
		pct += s.CPUPercent
	}
	return ratio(pct/100*p.Seconds, float64(bytes)/(1<<30))
}

func serverCPUText(p Phase, bytes uint64) string {
	return fmt.Sprintf("server processes: %.1f CPU-seconds per GiB", p.ServerCPUSecondsPerGiB(bytes))
}

func writePhase(w io.Writer, name string, p Phase, detail string) {
	if p.Error != "" || p.Client == "" {
		fmt.Fprintf(w, "    %-5s failed\n", name)
		return
	}
	var procs []string
	for _, s := range p.Servers {
		procs = append(procs, fmt.Sprintf("%s %.0f %%", s.Name, s.CPUPercent))
	}
	procs = append(procs, fmt.Sprintf("%s %.0f %%", p.Client, p.ClientCPUPercent))
	fmt.Fprintf(w, "    %-5s %5.1f s: %s; machine busy %.0f %%, iowait %.0f %%\n", name, p.Seconds, strings.Join(procs, ", "),
		p.MachineBusyPercent, p.MachineIOWaitPercent)
	fmt.Fprintf(w, "            others: %s\n", othersText(p.Others))
	if detail != "" {
		fmt.Fprintf(w, "            %s\n", detail)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
