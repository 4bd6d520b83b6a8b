//go:build chaos

package chaos

import (
	"fmt"
	"time"

	"keel/internal/testkit/faultfs"
)

// Disks: every node's data directory is on its own faultfs mount (when this
// process can mount one: root and /dev/fuse, as in CI), so that the faults
// below can act on the node's storage. A node's mount is n.disk; it is nil
// when faultfs is unavailable, and the faults that need it are then skipped
// with the reason in the fault's log line.

// mountDisks mounts a faultfs over every node's data directory. Call it
// before the nodes first start.
func (c *chaosCluster) mountDisks() {
	if err := faultfs.Available(); err != nil {
		c.noDisks = err
		c.t.Logf("chaos: data directories stay on the plain filesystem; slow-fsync, power-loss and disk-full faults will be skipped: %v", err)
		return
	}
	for _, n := range c.nodes {
		f, err := faultfs.MountOver(n.dataDir)
		if err != nil {
			c.t.Fatalf("mount a faultfs over %s's data directory: %v", n.id, err)
		}
		n.disk = f
	}
}

// unmountDisks unmounts every node's faultfs (after the nodes are dead).
func (c *chaosCluster) unmountDisks() {
	for _, n := range c.nodes {
		if n.disk != nil {
			if err := n.disk.Crash(); err != nil {
				c.t.Logf("unmount %s's faultfs: %v", n.id, err)
			}
		}
	}
}

// skipDisk says why a fault that needs n's faultfs cannot run, or "".
func (c *chaosCluster) skipDisk(n *chaosNode) string {
	if n.disk != nil {
		return ""
	}
	return fmt.Sprintf(" (skipped: no faultfs: %v)", c.noDisks)
}

// slowFsync delays every file fsync on n's disk by delay for d.
func (c *chaosCluster) slowFsync(n *chaosNode, delay, d time.Duration, sleep func(time.Duration)) {
	n.disk.SetFsyncDelay(delay)
	sleep(d)
	n.disk.SetFsyncDelay(0)
}

// diskFull fills n's disk for d: new names, fallocate and writes past a
// file's end fail with ENOSPC, and statfs shows no room; rewriting blocks a
// file already has passes, as on ext4 or XFS (a copy-on-write disk makes a
// full node stop with exit 75, which test/e2e's TestDiskFullLeaderCopyOnWrite
// covers).
func (c *chaosCluster) diskFull(n *chaosNode, d time.Duration, sleep func(time.Duration)) {
	n.disk.SetOverwriteWhenFull(true)
	n.disk.SetFull(true)
	sleep(d)
	n.disk.SetFull(false)
}

// powerLoss cuts n's power: its disk stops (with writes in flight: for the
// second before, every fsync takes 20 ms longer, so that bytes written and
// not yet synced are there as on a busy disk), n gets SIGKILL, every byte
// the disk had not synced is dropped and the disk is mounted again (the
// machine comes back); after d, n starts.
func (c *chaosCluster) powerLoss(n *chaosNode, d time.Duration, sleep func(time.Duration)) int64 {
	n.disk.SetFsyncDelay(20 * time.Millisecond)
	sleep(time.Second)
	dropped := n.disk.Cut() // the disk stops first: an fsync in flight does not complete
	n.kill()
	if err := n.disk.Crash(); err != nil {
		c.t.Fatalf("power loss of %s: crash its faultfs: %v", n.id, err)
	}
	f, err := n.disk.Remount()
	if err != nil {
		c.t.Fatalf("power loss of %s: mount its faultfs again: %v", n.id, err)
	}
	n.disk = f
	c.powerLosses++
	c.droppedBytes += dropped
	sleep(d)
	n.start()
	return dropped
}

// diskSummary is the summary's line about the disks.
func (c *chaosCluster) diskSummary() string {
	if c.noDisks != nil {
		return fmt.Sprintf("disks: plain, slow-fsync, power-loss and disk-full skipped (%v)", c.noDisks)
	}
	return fmt.Sprintf("disks: faultfs, %d power losses dropped %d unsynced bytes", c.powerLosses, c.droppedBytes)
}
