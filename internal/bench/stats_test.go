package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func msDurations(vals ...int) []time.Duration {
	out := make([]time.Duration, len(vals))
	for i, v := range vals {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	one := msDurations(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	// 99 fast operations and one slow one: p99 is still fast; an off-by-one
	// index (sorted[p*n/100]) would give the slow one.
	skewed := append(msDurations(slices.Repeat([]int{1}, 99)...), 100*time.Millisecond)
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"p50 of 10", one, 50, 5 * time.Millisecond},
		{"p90 of 10", one, 90, 9 * time.Millisecond},
		{"p99 of 10", one, 99, 10 * time.Millisecond},
		{"p100 of 10", one, 100, 10 * time.Millisecond},
		{"p1 of 10", one, 1, 1 * time.Millisecond},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p99.5 of 100", hundred, 99.5, 100 * time.Millisecond},
		{"p99 skewed", skewed, 99, 1 * time.Millisecond},
		{"p100 skewed", skewed, 100, 100 * time.Millisecond},
		{"single", msDurations(7), 50, 7 * time.Millisecond},
		{"empty", nil, 50, 0},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p%g) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarizeSortsACopy(t *testing.T) {
	samples := make([]time.Duration, 2000)
	for i := range samples {
		samples[i] = time.Duration(i+1) * time.Microsecond // 1 µs … 2000 µs
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(samples), func(i, j int) { samples[i], samples[j] = samples[j], samples[i] })
	orig := slices.Clone(samples)

	got := summarize(samples)
	want := Latency{Ops: 2000, P50Ms: 1.0, P99Ms: 1.98, MeanMs: 1.0005, MaxMs: 2.0}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if !slices.Equal(samples, orig) {
		t.Error("summarize reordered its input")
	}
	if (summarize(nil) != Latency{}) {
		t.Errorf("summarize(nil) = %+v, want zero", summarize(nil))
	}
}

func TestMBPerSec(t *testing.T) {
	if got := mbPerSec(300e6, 2*time.Second); got != 150 {
		t.Errorf("mbPerSec(300e6 B, 2 s) = %v, want 150", got)
	}
	if got := mbPerSec(1, 0); got != 0 {
		t.Errorf("mbPerSec(1, 0) = %v, want 0", got)
	}
}
