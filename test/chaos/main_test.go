//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"keel/internal/testkit"
)

// keelBin is the keel binary built by TestMain.
var keelBin string

var (
	flagSeed     = flag.Int64("chaos.seed", 0, "seed of the fault schedule (0: from KEEL_CHAOS_SEED, else the clock)")
	flagDuration = flag.Duration("chaos.duration", 0, "how long faults are injected per cluster shape (0: from KEEL_CHAOS_DURATION, else 50s)")
)

// runSeed returns the seed of this run: -chaos.seed, KEEL_CHAOS_SEED or the
// clock.
func runSeed() int64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	if s := os.Getenv("KEEL_CHAOS_SEED"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v
		}
		fmt.Fprintf(os.Stderr, "chaos: KEEL_CHAOS_SEED=%q is not an integer; using the clock\n", s)
	}
	return time.Now().UnixNano() % 1_000_000_000
}

// runDuration returns how long faults run per shape.
func runDuration() time.Duration {
	if *flagDuration != 0 {
		return *flagDuration
	}
	if s := os.Getenv("KEEL_CHAOS_DURATION"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "chaos: KEEL_CHAOS_DURATION=%q is not a duration; using 50s\n", s)
	}
	return 50 * time.Second
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testkit.RunWithKeel(m, &keelBin))
}
