//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const workers = 4

// TestChaos runs the fault schedule of one seed against both cluster
// shapes: 3 data nodes, and 2 data nodes + a witness. Replay a run with
// -chaos.seed=SEED (or KEEL_CHAOS_SEED); -chaos.duration (or
// KEEL_CHAOS_DURATION) sets how long faults are injected per shape.
func TestChaos(t *testing.T) {
	seed, dur := runSeed(), runDuration()
	t.Logf("chaos: seed %d, %v of faults per shape (replay: go test -tags chaos ./test/chaos/ -run %s -chaos.seed=%d -chaos.duration=%v)",
		seed, dur, t.Name(), seed, dur)
	for _, shape := range []struct {
		name    string
		data    int
		witness bool
	}{{"3data", 3, false}, {"2data+witness", 2, true}} {
		t.Run(shape.name, func(t *testing.T) {
			runChaos(t, seed, dur, shape.data, shape.witness)
		})
	}
}

func runChaos(t *testing.T, seed int64, dur time.Duration, data int, witness bool) {
	c := newChaosCluster(t, data, witness)
	c.exportData()
	tunnels := []*tunnelProc{c.startTunnel("a"), c.startTunnel("b")}
	hs := setup(t, tunnels[0].addr)

	var ids []string
	for _, n := range c.nodes {
		ids = append(ids, n.id)
	}
	schedule := makeSchedule(seed, ids, dur)
	t.Logf("seed %d, schedule of %d faults:\n%s", seed, len(schedule), formatSchedule(schedule))

	h := newHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		w := &worker{id: i, addr: tunnels[i%len(tunnels)].addr, rng: rand.New(rand.NewPCG(uint64(seed), uint64(i))), h: h, hs: hs}
		wg.Add(1)
		go func() { defer wg.Done(); w.run(stop) }()
	}

	start := time.Now()
	faults := map[faultKind]int{}
	stopFaults := make(chan struct{})
	for _, f := range schedule {
		if d := time.Until(start.Add(f.Start)); d > 0 {
			time.Sleep(d)
		}
		target := c.run(f, stopFaults)
		faults[f.Kind]++
		t.Logf("+%5.1fs %s on %s done", time.Since(start).Seconds(), f.Kind, target)
	}
	c.healAll()
	healed := time.Now()
	time.Sleep(3 * time.Second) // the clients go on against the healed cluster
	close(stop)
	wg.Wait()
	end := time.Now()
	t.Logf("faults over after %v; clients stopped %v after healing", healed.Sub(start).Round(time.Millisecond), end.Sub(healed).Round(time.Millisecond))

	var anomalies []string
	report := func(what string, bad []string) {
		for _, b := range bad {
			anomalies = append(anomalies, what+": "+b)
		}
	}

	// Convergence: every data node at the same applied index with the
	// same state digest.
	report("convergence", c.converge(90*time.Second))

	// Durability and provenance of the created files; the final reads of
	// the registers join the history.
	found := finalState(t, tunnels[0].addr, h, hs)
	report("files", CheckCreated(h.created, found, sha(nil)))

	// Linearizability of the registers.
	res, desc := CheckRegisters(h.regs, regInit, 5*time.Minute)
	if res != porcupine.Ok {
		report("linearizability", []string{fmt.Sprintf("porcupine: %v\n%s", res, desc)})
	}

	// One node serving at a time.
	evs := append([]Event(nil), c.events...)
	for _, n := range c.nodes {
		e, err := ActiveEvents(n.id, n.log)
		if err != nil {
			t.Fatalf("read %s's log: %v", n.id, err)
		}
		evs = append(evs, e...)
	}
	ivs := ServingIntervals(evs, time.Now())
	report("serving", Overlaps(ivs))
	failovers := -1
	for _, iv := range ivs {
		if iv.Start == Active && iv.From.After(start) {
			failovers++
		}
	}
	failovers++ // the first leader of the run came before start
	report("client", h.anomalies)

	for _, tp := range tunnels {
		if !tp.proc.Running() {
			anomalies = append(anomalies, fmt.Sprintf("tunnel %s exited: %v", tp.name, tp.proc.Err()))
		}
	}

	var fk []string
	for k, v := range faults {
		fk = append(fk, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(fk)
	var st []string
	for k, v := range h.statuses {
		st = append(st, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(st)
	acked := 0
	for _, cr := range h.created {
		if cr.Acked {
			acked++
		}
	}
	summary := fmt.Sprintf("chaos summary (%s, seed %d, %v of faults):\n"+
		"  operations: %d checked (%d reads, %d writes, %d creates acknowledged), %d with unknown outcome, %d reads unanswered\n"+
		"  registers: %d operations linearizable: %v; files: %d tried, %d acknowledged, %d present at the end\n"+
		"  faults: %d (%s); install-crash kills that landed mid-install: %d; %s\n  fail-overs: %d (serving intervals: %d)\n  client-side errors: %s\n  anomalies: %d",
		t.Name(), seed, dur,
		total(h.ok), h.ok["read"], h.ok["write"], h.ok["create"], total(h.unknown), total(h.failed),
		len(h.regs), res, len(h.created), acked, len(found),
		len(schedule), strings.Join(fk, ", "), c.installKills, c.diskSummary(), failovers, len(ivs), strings.Join(st, "; "), len(anomalies))
	t.Log(summary)
	fmt.Println(summary)
	if len(anomalies) > 0 {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("keel-chaos-%d-%s.history", seed, strings.ReplaceAll(t.Name(), "/", "_")))
		var ivText []string
		for _, iv := range ivs {
			ivText = append(ivText, iv.String())
		}
		_ = os.WriteFile(path, []byte("schedule:\n"+formatSchedule(schedule)+"\nserving:\n"+strings.Join(ivText, "\n")+"\n\nregister history:\n"+h.dump()), 0o644)
		t.Errorf("%d anomalies (seed %d; replay with -chaos.seed=%d -chaos.duration=%v; history in %s):\n  %s",
			len(anomalies), seed, seed, dur, path, strings.Join(anomalies, "\n  "))
		for _, n := range c.nodes {
			t.Logf("--- end of %s's log ---\n%s", n.id, tail(n.log, 40))
		}
	}
}

// converge waits until every data node has applied the same index and has
// the same state digest; it returns what differs at the timeout.
func (c *chaosCluster) converge(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var hashes []string
		same := true
		for _, n := range c.dataNodes() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			h, err := c.client.Hash(ctx, n.adminAddr)
			cancel()
			if err != nil {
				same = false
				hashes = append(hashes, fmt.Sprintf("%s: %v", n.id, err))
				continue
			}
			hashes = append(hashes, fmt.Sprintf("%s: index %d hash %s", n.id, h.AppliedIndex, h.Hash))
			if len(hashes) > 1 && !strings.HasSuffix(hashes[0], fmt.Sprintf("index %d hash %s", h.AppliedIndex, h.Hash)) {
				same = false
			}
		}
		if same {
			c.t.Logf("converged: %s", strings.Join(hashes, "; "))
			return nil
		}
		last = strings.Join(hashes, "; ")
		time.Sleep(500 * time.Millisecond)
	}
	return []string{fmt.Sprintf("data nodes differ %v after healing: %s", timeout, last)}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
