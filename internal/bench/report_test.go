package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// result builds a run with the given disk rate, cluster throughputs,
// per-node amplifications and 3-node 4 KiB p50.
func result(disk, tput1, tput3, amp1 float64, amp3 [3]float64, p50ms float64) *Result {
	node := func(id string, amp float64) NodeResult { return NodeResult{ID: id, Amplification: amp} }
	return &Result{
		Disk: DiskResult{SeqMBps: disk},
		Clusters: []ClusterResult{
			{DataNodes: 1, ThroughputMBps: tput1, Nodes: []NodeResult{node("n1", amp1)}, Settle: Settle{Quiet: true}},
			{DataNodes: 3, ThroughputMBps: tput3, Write4K: Latency{P50Ms: p50ms},
				Nodes: []NodeResult{node("n1", amp3[0]), node("n2", amp3[1]), node("n3", amp3[2])}, Settle: Settle{Quiet: true}},
		},
	}
}

func passes(cs []Check) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		out[c.Name] = c.Pass
	}
	return out
}

const (
	check3Tput = "3-node throughput ≥ 0.25 × disk"
	check1Tput = "1-node throughput ≥ 0.5 × disk"
	check1Amp  = "1-node write amplification ≤ 3 per node"
	check3Amp  = "3-node write amplification ≤ 3 per node"
	check3Lat  = "3-node 4 KiB write p50 < 1.5 ms"
)

func TestEvaluateAtTheLimits(t *testing.T) {
	// Exactly at each limit: throughput and amplification limits are
	// inclusive, the latency limit is strict.
	got := passes(Evaluate(result(200, 100, 50, 3, [3]float64{1, 3, 2}, 1.5)))
	want := map[string]bool{check3Tput: true, check1Tput: true, check1Amp: true, check3Amp: true, check3Lat: false}
	if len(got) != len(want) {
		t.Fatalf("checks %v, want %v", got, want)
	}
	for name, pass := range want {
		if got[name] != pass {
			t.Errorf("%s: pass = %t, want %t", name, got[name], pass)
		}
	}
}

func TestEvaluateJustOutside(t *testing.T) {
	// The worst node decides amplification even when it is not the first.
	got := passes(Evaluate(result(200, 99.9, 49.9, 2.9, [3]float64{1, 3.01, 2}, 1.49)))
	want := map[string]bool{check3Tput: false, check1Tput: false, check1Amp: true, check3Amp: false, check3Lat: true}
	for name, pass := range want {
		if got[name] != pass {
			t.Errorf("%s: pass = %t, want %t", name, got[name], pass)
		}
	}
}

func TestEvaluateValues(t *testing.T) {
	cs := Evaluate(result(300, 120, 90, 2, [3]float64{1.5, 2.5, 2}, 0.8))
	for _, c := range cs {
		switch c.Name {
		case check3Tput:
			if c.Value != 0.3 {
				t.Errorf("3-node ratio %v, want 0.3", c.Value)
			}
		case check1Tput:
			if c.Value != 0.4 || c.Pass {
				t.Errorf("1-node ratio %v pass %t, want 0.4 MISS", c.Value, c.Pass)
			}
		case check3Amp:
			if c.Value != 2.5 || !strings.Contains(c.Detail, "n2") {
				t.Errorf("3-node amplification %v (%s), want 2.5 from n2", c.Value, c.Detail)
			}
		}
	}
}

func TestEvaluateSkipsMissingClusters(t *testing.T) {
	r := result(200, 100, 50, 1, [3]float64{1, 1, 1}, 1)
	r.Clusters = r.Clusters[:1]
	got := passes(Evaluate(r))
	if len(got) != 2 || !got[check1Tput] || !got[check1Amp] {
		t.Errorf("with only 1 node: checks %v, want the 1-node throughput and amplification only", got)
	}
}

func TestAddLoad(t *testing.T) {
	const payload = 1000 << 20
	t0 := time.Unix(100, 0)
	snap := func(at time.Time, busy, total time.Duration, self time.Duration, nodes ...procSample) snapshot {
		return snapshot{at: at, nodes: nodes, self: procSample{cpu: self}, sys: cpuTimes{busy: busy, total: total}}
	}
	before := snap(t0, 0, 0, 0, procSample{writeBytes: 5 << 20, cpu: time.Second}, procSample{writeBytes: 0})
	loaded := snap(t0.Add(10*time.Second), 15*time.Second, 20*time.Second, 2*time.Second,
		procSample{writeBytes: 1000 << 20, cpu: 9 * time.Second}, procSample{writeBytes: 500 << 20, cpu: 3 * time.Second})
	settled := snap(t0.Add(13*time.Second), 0, 0, 0,
		procSample{writeBytes: 2005 << 20}, procSample{writeBytes: 1500 << 20})
	cr := ClusterResult{PayloadBytes: payload, Nodes: []NodeResult{{ID: "n1"}, {ID: "n2"}}}
	cr.addLoad(10*time.Second, before, loaded, settled, 2)

	if cr.Nodes[0].WriteBytes != 2000<<20 || cr.Nodes[0].Amplification != 2 || cr.Nodes[1].Amplification != 1.5 {
		t.Errorf("nodes %+v: want 2000 MiB (amp 2) and amp 1.5, counted to the settled reading", cr.Nodes)
	}
	if cr.Amplification != 3.5 || cr.WriteBytes != 3500<<20 {
		t.Errorf("sum %d B amp %v, want 3500 MiB, 3.5", cr.WriteBytes, cr.Amplification)
	}
	if cr.Nodes[0].CPUPercent != 80 || cr.Nodes[1].CPUPercent != 30 || cr.ClientCPUPercent != 20 {
		t.Errorf("cpu n1 %v n2 %v client %v, want 80 30 20", cr.Nodes[0].CPUPercent, cr.Nodes[1].CPUPercent, cr.ClientCPUPercent)
	}
	if cr.MachineBusyPercent != 75 {
		t.Errorf("machine busy %v, want 75", cr.MachineBusyPercent)
	}
	// 8 + 3 + 2 CPU-seconds for 1000 MiB: 12.4 per GB, so 2 CPUs give at most 161 MB/s.
	if want := 13 / (float64(payload) / 1e9); cr.CPUSecondsPerGB != want || cr.CPUBoundMBps != 2000/want {
		t.Errorf("CPU cost %v s/GB, bound %v MB/s; want %v and %v", cr.CPUSecondsPerGB, cr.CPUBoundMBps, want, 2000/want)
	}
	if want := float64(payload) / 1e6 / 10; cr.ThroughputMBps != want {
		t.Errorf("throughput %v, want %v", cr.ThroughputMBps, want)
	}
}

func TestWriteTextShowsVerdicts(t *testing.T) {
	r := result(200, 100, 40, 2, [3]float64{2, 2, 2}, 0.9)
	r.Checks = Evaluate(r)
	var b bytes.Buffer
	WriteText(&b, r)
	out := b.String()
	for _, line := range []string{
		"MISS  " + check3Tput,
		"PASS  " + check1Tput,
		"PASS  " + check3Lat,
		"n1 2.00  n2 2.00  n3 2.00",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("warning without other processes:\n%s", out)
	}
	r.Clusters[1].OthersDuringLoad = Others{ProcessesPercent: 90, Top: []ProcessCPU{{Name: "go", CPUPercent: 85}}}
	b.Reset()
	WriteText(&b, r)
	if !strings.Contains(b.String(), "WARNING") || !strings.Contains(b.String(), "go 85 %") {
		t.Errorf("no warning about a busy machine:\n%s", b.String())
	}
}
