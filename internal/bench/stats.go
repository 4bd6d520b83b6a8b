package bench

import (
	"keel/internal/units"

	"math"
	"slices"
	"time"
)

// Latency summarizes the times of a run of operations.
type Latency struct {
	Ops    int     `json:"ops"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// summarize computes the latency figures of samples, which it leaves as
// they are.
func summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return Latency{
		Ops:    len(sorted),
		P50Ms:  ms(percentile(sorted, 50)),
		P99Ms:  ms(percentile(sorted, 99)),
		MeanMs: ms(sum / time.Duration(len(sorted))),
		MaxMs:  ms(sorted[len(sorted)-1]),
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of ascending sorted
// by the nearest-rank method: the smallest sample that at least p % of the
// samples do not exceed. It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mbPerSec is bytes per second in MB (10^6 bytes).
func mbPerSec(bytes uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// formatBytes prints bytes in binary units.
func formatBytes(b uint64) string { return units.FormatSize(b) }
