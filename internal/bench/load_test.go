package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"
)

// recorder is a fake cluster that remembers every write.
type recorder struct {
	mu     sync.Mutex
	writes map[string][][2]uint64 // file → (offset, length) in arrival order
	firsts map[uint64]bool        // first 8 bytes of every write
	fail   int                    // fail the fail-th write (1-based) and every one after it; 0 never
	n      int
}

func (r *recorder) put(_ context.Context, name string, off uint64, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.fail > 0 && r.n >= r.fail {
		return errors.New("disk on fire")
	}
	if r.writes == nil {
		r.writes, r.firsts = map[string][][2]uint64{}, map[uint64]bool{}
	}
	r.writes[name] = append(r.writes[name], [2]uint64{off, uint64(len(data))})
	if len(data) >= 8 {
		r.firsts[binary.LittleEndian.Uint64(data)] = true
	}
	return nil
}

func TestThroughputWritesExactlyTotalAsAppends(t *testing.T) {
	const reqSize, total = 1000, 25_500 // 25 full requests and a half one
	var r recorder
	if _, err := runThroughput(context.Background(), r.put, 4, reqSize, total); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for name, ws := range r.writes {
		var next uint64
		for _, w := range ws {
			if w[0] != next {
				t.Errorf("%s: write at %d, want an append at %d", name, w[0], next)
			}
			next += w[1]
			sum += w[1]
		}
	}
	if sum != total || r.n != 26 {
		t.Errorf("wrote %d bytes in %d requests, want %d in 26", sum, r.n, total)
	}
	if len(r.writes) > 4 {
		t.Errorf("%d files for 4 writers", len(r.writes))
	}
	if len(r.firsts) != 26 {
		t.Errorf("%d distinct request payloads, want 26", len(r.firsts))
	}
}

func TestThroughputStopsOnError(t *testing.T) {
	r := recorder{fail: 3}
	_, err := runThroughput(context.Background(), r.put, 2, 10, 10_000)
	if err == nil {
		t.Fatal("no error from a failing write")
	}
	if r.n > 10 {
		t.Errorf("%d writes after a failure, want the writers to stop", r.n)
	}
}

func TestLatencyAppendsOneAtATime(t *testing.T) {
	var r recorder
	lat, err := runLatency(context.Background(), r.put, "f", 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 20 || r.n != 20 {
		t.Errorf("%d samples from %d writes, want 20 from 20", len(lat), r.n)
	}
	for i, w := range r.writes["f"] {
		if w != [2]uint64{uint64(i) * smallIO, smallIO} {
			t.Errorf("write %d: %v, want 4 KiB at %d", i, w, i*smallIO)
		}
	}
}

func TestWaitQuiet(t *testing.T) {
	// A counter that grows for 10 reads and then stays put.
	var n uint64
	growing := func() (uint64, error) {
		if n < 10<<20 {
			n += 1 << 20
		}
		return n, nil
	}
	last, _, quiet, err := waitQuiet(context.Background(), growing, 20*time.Millisecond, 5*time.Second, time.Millisecond, 1000)
	if err != nil || !quiet || last != 10<<20 {
		t.Errorf("waitQuiet = %d, quiet %t, %v; want 10 MiB, quiet", last, quiet, err)
	}
	// A counter that never stops gives up at max.
	var m uint64
	forever := func() (uint64, error) { m += 1 << 20; return m, nil }
	_, waited, quiet, err := waitQuiet(context.Background(), forever, 20*time.Millisecond, 50*time.Millisecond, time.Millisecond, 1000)
	if err != nil || quiet || waited < 50*time.Millisecond {
		t.Errorf("never quiet: waited %v, quiet %t, %v; want ≥ 50ms, not quiet", waited, quiet, err)
	}
}
