package replication

import (
	"sync"
	"syscall"
	"time"
)

// freeCache answers the free-space check of every proposal that adds data
// (checkSpace) without a statfs each time: a reading younger than
// freeCacheAge is used again while it shows more than freeCacheSlack beyond
// what the check needs, more than this node could take in that time. Close
// to the reserve every check reads the disk.
type freeCache struct {
	statfs func(dir string) uint64 // diskFree
	now    func() time.Time

	mu   sync.Mutex
	free uint64
	at   time.Time
}

const (
	freeCacheAge   = 100 * time.Millisecond
	freeCacheSlack = 1 << 30
)

// atLeast reports whether dir's disk has need bytes free.
func (c *freeCache) atLeast(dir string, need uint64) bool {
	now := c.now()
	c.mu.Lock()
	if !c.at.IsZero() && now.Sub(c.at) < freeCacheAge && c.free >= need+freeCacheSlack {
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	free := c.statfs(dir)
	c.mu.Lock()
	c.free, c.at = free, now
	c.mu.Unlock()
	return free >= need
}

func diskFree(dir string) uint64 {
	var s syscall.Statfs_t
	if syscall.Statfs(dir, &s) != nil {
		return ^uint64(0) // unknown: let the write try
	}
	return s.Bavail * uint64(s.Bsize)
}
