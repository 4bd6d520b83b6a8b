package bench

import (
	"context"
	"time"
)

// waitQuiet polls a counter every tick until it has grown by no more than
// tolerance (and not shrunk) over window, or until max has passed. It returns the last
// reading, how long it waited and whether the counter went quiet.
func waitQuiet(ctx context.Context, read func() (uint64, error), window, max, tick time.Duration, tolerance uint64) (last uint64, waited time.Duration, quiet bool, err error) {
	start := time.Now()
	if last, err = read(); err != nil {
		return 0, 0, false, err
	}
	base, baseAt := last, start
	for {
		select {
		case <-ctx.Done():
			return last, time.Since(start), false, ctx.Err()
		case <-time.After(tick):
		}
		if last, err = read(); err != nil {
			return last, time.Since(start), false, err
		}
		now := time.Now()
		if last < base || last-base > tolerance {
			base, baseAt = last, now
		}
		if now.Sub(baseAt) >= window {
			return last, now.Sub(start), true, nil
		}
		if now.Sub(start) >= max {
			return last, now.Sub(start), false, nil
		}
	}
}
