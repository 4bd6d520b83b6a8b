package replication

import (
	"sync"
	"syscall"
	"time"
)

// freeCache gives the disk guard its free-space reading without a statfs
// for every proposal that adds data (checkSpace): a reading younger than
// freeCacheAge is used again while it shows more than freeCacheSlack beyond
// what the caller needs, more than this node could take in that time. Close
// to the reserve every call reads the disk.
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

// read returns the free bytes of dir's disk, from the last reading when it
// is young and far above need.
func (c *freeCache) read(dir string, need uint64) uint64 {
	now := c.now()
	c.mu.Lock()
	if !c.at.IsZero() && now.Sub(c.at) < freeCacheAge && c.free >= need+freeCacheSlack {
		free := c.free
		c.mu.Unlock()
		return free
	}
	c.mu.Unlock()
	free := c.statfs(dir)
	c.mu.Lock()
	c.free, c.at = free, now
	c.mu.Unlock()
	return free
}

func diskFree(dir string) uint64 {
	var s syscall.Statfs_t
	if syscall.Statfs(dir, &s) != nil {
		return ^uint64(0) // unknown: let the write try
	}
	return s.Bavail * uint64(s.Bsize)
}
