package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keel/internal/cluster"
)

// The leader's Prometheus metrics, read before and after a phase, split the
// time of a PUT between keel's stages.

// leaderMetrics are the leader's counters that Breakdown uses.
type leaderMetrics struct {
	leader    bool
	readIndex histogram // read-index barrier, once per PUT
	commit    histogram // one raft proposal (Apply or ApplyMany), until applied on the leader
	apply     histogram // one batch of entries applied to Pebble
	entries   float64   // log entries applied
}

// histogram is the sum and count of a Prometheus histogram.
type histogram struct{ sum, count float64 }

func (h histogram) minus(o histogram) histogram { return histogram{h.sum - o.sum, h.count - o.count} }

func (h histogram) meanMs() float64 { return 1000 * ratio(h.sum, h.count) }

// Breakdown splits the mean time of a phase's PUTs by the leader's metrics.
type Breakdown struct {
	Puts               int     `json:"puts"`
	ReadIndexPerPut    float64 `json:"read_index_per_put"`
	ReadIndexMeanMs    float64 `json:"read_index_mean_ms"`
	ProposalsPerPut    float64 `json:"proposals_per_put"`     // raft Apply/ApplyMany calls
	ProposalMeanMs     float64 `json:"proposal_mean_ms"`      // propose → quorum commit → applied on the leader
	EntriesPerPut      float64 `json:"entries_per_put"`       // log entries applied
	ApplyBatchesPerPut float64 `json:"apply_batches_per_put"` // state-machine apply calls
	ApplyBatchMeanMs   float64 `json:"apply_batch_mean_ms"`
	// RestMs is, for one writer, the mean PUT less its read-index and
	// proposal times: HTTPS, TLS and the handler's own work. Not set when
	// PUTs overlap.
	RestMs float64 `json:"rest_ms,omitempty"`
}

// breakdown compares two readings of the leader's metrics taken around
// puts PUTs; if the PUTs ran one at a time, putMean is their mean time.
func breakdown(before, after leaderMetrics, puts int, putMean time.Duration) Breakdown {
	ri, pr, ap := after.readIndex.minus(before.readIndex), after.commit.minus(before.commit), after.apply.minus(before.apply)
	n := float64(puts)
	b := Breakdown{
		Puts:            puts,
		ReadIndexPerPut: ratio(ri.count, n), ReadIndexMeanMs: ri.meanMs(),
		ProposalsPerPut: ratio(pr.count, n), ProposalMeanMs: pr.meanMs(),
		EntriesPerPut:      ratio(after.entries-before.entries, n),
		ApplyBatchesPerPut: ratio(ap.count, n), ApplyBatchMeanMs: ap.meanMs(),
	}
	if putMean > 0 {
		b.RestMs = ms(putMean) - 1000*ratio(ri.sum+pr.sum, n)
	}
	return b
}

// scrapeLeader reads the metrics of the node the client last found leading.
func scrapeLeader(ctx context.Context, c *cluster.Client) (leaderMetrics, error) {
	// With a deadline of its own: Stream, given none, cancels the context
	// the body is read under as it returns.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Stream(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return leaderMetrics{}, fmt.Errorf("bench: read the leader's metrics: %w", err)
	}
	defer resp.Body.Close()
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || !strings.HasPrefix(name, "keel_") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			v[name] = f
		}
	}
	if err := sc.Err(); err != nil {
		return leaderMetrics{}, fmt.Errorf("bench: read the leader's metrics: %w", err)
	}
	h := func(name string) histogram { return histogram{v[name+"_sum"], v[name+"_count"]} }
	return leaderMetrics{
		leader:    v["keel_is_leader"] == 1,
		readIndex: h("keel_read_index_seconds"),
		commit:    h("keel_commit_latency_seconds"),
		apply:     h("keel_apply_latency_seconds"),
		entries:   v["keel_applied_entries_total"],
	}, nil
}
