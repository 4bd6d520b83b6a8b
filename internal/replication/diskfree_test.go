package replication

import (
	"testing"
	"time"
)

// The free-space check reads the disk again unless a reading younger than
// freeCacheAge leaves more than freeCacheSlack beyond the need.
func TestFreeCacheRereadsNearTheReserveAndWhenOld(t *testing.T) {
	clock := time.Unix(1000, 0)
	free, reads := uint64(10<<30), 0
	c := &freeCache{statfs: func(string) uint64 { reads++; return free }, now: func() time.Time { return clock }}
	check := func(need uint64, want bool, wantReads int, what string) {
		t.Helper()
		if got := c.read("/d", need) >= need; got != want || reads != wantReads {
			t.Fatalf("%s: read(%d) >= need is %v after %d disk reads, want %v after %d", what, need, got, reads, want, wantReads)
		}
	}
	check(64<<20, true, 1, "first check")
	check(64<<20, true, 1, "fresh reading, far from the reserve")
	free = 1 << 20 // filled by something else: seen once the reading is old
	clock = clock.Add(freeCacheAge)
	check(64<<20, false, 2, "old reading")
	check(64<<20, false, 3, "near the reserve every check reads")
	free = 2 << 30
	check(64<<20, true, 4, "space back")
	check(1<<30+64<<20, true, 5, "within the slack of the need: read again")
}
