package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/config"
	"keel/internal/nfs/nfsclient"
	"keel/internal/testkit/faultfs"
)

// Full disks. Each data node's data directory is on its own faultfs, which
// can be made full: statfs then reports no free space, and new files,
// fallocate and writes past a file's end fail with ENOSPC. "ext4" mode lets
// writes inside a file's allocated size pass (ext4, XFS: raft-wal's
// preallocated segments, bbolt's pages); "cow" mode fails those too (btrfs,
// ZFS). NFS clients write through a `keel tunnel`, as a client machine does.

// fullDisks mounts a faultfs over every data member's data directory, or
// skips the test saying why it cannot. Call before the members start.
func fullDisks(t *testing.T, c *Cluster) map[string]*faultfs.FS {
	t.Helper()
	if err := faultfs.Available(); err != nil {
		t.Skipf("skipping disk-full test: %v", err)
	}
	disks := map[string]*faultfs.FS{}
	for _, m := range c.DataMembers() {
		cfg, err := config.Load(m.Config)
		if err != nil {
			t.Fatal(err)
		}
		f, err := faultfs.MountOver(cfg.Node.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		disks[m.ID] = f
	}
	// After the cluster's own cleanup (registered earlier) killed the nodes.
	t.Cleanup(func() {
		for _, f := range disks {
			_ = f.Unmount()
		}
	})
	return disks
}

func fill(f *faultfs.FS, ext4 bool) {
	f.SetOverwriteWhenFull(ext4)
	f.SetFull(true)
}

// nfsStats counts the outcomes an NFS client met.
type nfsStats struct {
	mu       sync.Mutex
	statuses map[nfsv3.Nfsstat3]int
	hangs    int // calls with no answer within 15 s
	acked    map[string]string
	ackedAt  []time.Time
	firstBad string
}

func (s *nfsStats) count(st nfsv3.Nfsstat3) {
	s.mu.Lock()
	s.statuses[st]++
	s.mu.Unlock()
}

func (s *nfsStats) snapshot() (map[nfsv3.Nfsstat3]int, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[nfsv3.Nfsstat3]int{}
	for k, v := range s.statuses {
		out[k] = v
	}
	return out, s.hangs, len(s.acked)
}

func (s *nfsStats) ackedSince(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.ackedAt {
		if a.After(t) {
			n++
		}
	}
	return n
}

func (s *nfsStats) ackedFiles() []ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ack
	for p, h := range s.acked {
		out = append(out, ack{Path: p, Sum: h})
	}
	return out
}

// diskFullWriter creates files /nfs-<tag>-NNNNN of 64 KiB through the tunnel at
// port until stop closes: CREATE, then one FILE_SYNC WRITE, each retried
// after JUKEBOX (what an NFS client does while the active node changes) up
// to 100 times. Every other status is counted and the file given up.
func diskFullWriter(t *testing.T, port int, tag string, s *nfsStats, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		var gc *nfsclient.Client
		var root []byte
		defer func() {
			if gc != nil {
				gc.Close()
			}
		}()
		connect := func() bool {
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return false
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := nfsclient.Dial(ctx, addr, nfsclient.Options{Machine: "diskfull"})
				if err == nil {
					r, st, merr := c.Mount(ctx, "/data")
					cancel()
					if merr == nil && st == mount.MNT3_OK {
						gc, root = c, r
						return true
					}
					c.Close()
				} else {
					cancel()
				}
				time.Sleep(100 * time.Millisecond)
			}
			return false
		}
		// call runs op until it answers other than JUKEBOX or a broken
		// connection; it reports the last status.
		call := func(op func(ctx context.Context) (nfsv3.Nfsstat3, error)) (nfsv3.Nfsstat3, bool) {
			for try := 0; try < 100; try++ {
				if gc == nil && !connect() {
					return 0, false
				}
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				st, err := op(ctx)
				timedOut := ctx.Err() != nil
				cancel()
				if err != nil {
					if timedOut {
						s.mu.Lock()
						s.hangs++
						s.mu.Unlock()
					}
					gc.Close()
					gc = nil
					continue
				}
				s.count(st)
				if st != nfsv3.NFS3ERR_JUKEBOX {
					return st, true
				}
				time.Sleep(100 * time.Millisecond)
			}
			return nfsv3.NFS3ERR_JUKEBOX, true
		}
		mode := uint32(0o644)
		for i := 0; i < 100_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("nfs-%s-%05d", tag, i)
			data := content("data:/"+name, 64<<10)
			var h []byte
			st, ok := call(func(ctx context.Context) (nfsv3.Nfsstat3, error) {
				r, st, err := gc.Create(ctx, root, name, nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
				if err == nil && st == nfsv3.NFS3_OK {
					h = nfsclient.Handle(r.Obj)
				}
				return st, err
			})
			if !ok {
				return
			}
			if st != nfsv3.NFS3_OK {
				s.bad(fmt.Sprintf("CREATE %s: status %d", name, st))
				time.Sleep(200 * time.Millisecond)
				continue
			}
			st, ok = call(func(ctx context.Context) (nfsv3.Nfsstat3, error) {
				_, st, err := gc.WriteHow(ctx, h, 0, data, nfsv3.FILE_SYNC)
				return st, err
			})
			if !ok {
				return
			}
			if st != nfsv3.NFS3_OK {
				s.bad(fmt.Sprintf("WRITE %s: status %d", name, st))
				time.Sleep(200 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			s.acked["/"+name] = sum(data)
			s.ackedAt = append(s.ackedAt, time.Now())
			s.mu.Unlock()
		}
	}()
	return &wg
}

func (s *nfsStats) bad(what string) {
	s.mu.Lock()
	if s.firstBad == "" {
		s.firstBad = what
	}
	s.mu.Unlock()
}

func newNFSStats() *nfsStats {
	return &nfsStats{statuses: map[nfsv3.Nfsstat3]int{}, acked: map[string]string{}}
}

// waitDiskState waits until m reports its data disk full (or not), in its
// status (raft.disk, health) and in keel_disk_full.
func waitDiskState(t *testing.T, c *Cluster, m *Member, full bool, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%s to report its disk full=%v", m.ID, full), func() (bool, string) {
		st, err := m.Status()
		if err != nil {
			return false, err.Error()
		}
		if st.Raft.Disk.Full != full || strings.HasPrefix(st.Health, "degraded: data disk full") != full {
			return false, fmt.Sprintf("disk %+v, health %q", st.Raft.Disk, st.Health)
		}
		want := 0.0
		if full {
			want = 1
		}
		metrics, err := fetchMetrics(c, m, 5*time.Second)
		if err != nil {
			return false, err.Error()
		}
		if v := metricOr(metrics, "keel_disk_full", -1); v != want {
			return false, fmt.Sprintf("keel_disk_full %v", v)
		}
		return true, ""
	})
}

// diskFullCluster starts 3 data nodes on faultfs disks with the volume data
// exported and a tunnel, and writes a first set of files.
func diskFullCluster(t *testing.T) (*Cluster, map[string]*faultfs.FS, *tunnelProc) {
	t.Helper()
	c := initCluster(t, Shape{Data: 3, Fast: true})
	disks := fullDisks(t, c)
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	return c, disks, c.startTunnel("client")
}

// TestDiskFullLeader fills the active node's disk (ext4-like) while NFS
// clients write through a tunnel. The full leader must hand its role to a
// node with room; the clients must see no error (at most JUKEBOX, retried)
// and no hang, and keep being served; the full node must say in its status,
// health and keel_disk_full that its disk is full, stay up, and once space
// is back catch up by itself to the same state digest with every
// acknowledged file byte for byte.
func TestDiskFullLeader(t *testing.T) { diskFullLeader(t, true) }

// TestDiskFullLeaderCopyOnWrite is TestDiskFullLeader on a disk where even
// overwrites fail: the old leader cannot save the new term it learns when
// it hands over, so it must stop with exit status 75 and a log line that
// says its disk is full and what to do (not a Go panic). The clients see
// the same as above; once space is back and it is started again (as
// systemd's Restart=always does) it catches up to the same state digest.
func TestDiskFullLeaderCopyOnWrite(t *testing.T) { diskFullLeader(t, false) }

func diskFullLeader(t *testing.T, ext4 bool) {
	c, disks, tun := diskFullCluster(t)
	s := newNFSStats()
	stop := make(chan struct{})
	var wgs []*sync.WaitGroup
	for i := range 2 {
		wgs = append(wgs, diskFullWriter(t, tun.Port, fmt.Sprint(i), s, stop))
	}
	waitFor(t, 30*time.Second, "the NFS clients to write 10 files", func() (bool, string) {
		_, _, n := s.snapshot()
		return n >= 10, fmt.Sprintf("%d acknowledged", n)
	})
	old := c.WaitLeader(10*time.Second, "")
	fill(disks[old.ID], ext4)
	fullAt := time.Now()
	t.Logf("%s (leader): disk full", old.ID)
	leader := c.WaitLeader(30*time.Second, old.ID)
	t.Logf("%s leads %v after the disk filled", leader.ID, time.Since(fullAt).Round(time.Millisecond))
	if ext4 {
		waitDiskState(t, c, old, true, 15*time.Second)
	}
	waitFor(t, 30*time.Second, "the NFS clients to be served by the new leader", func() (bool, string) {
		n := s.ackedSince(fullAt.Add(time.Second))
		return n >= 10, fmt.Sprintf("%d files acknowledged since", n)
	})
	if ext4 {
		if !old.Running() {
			t.Fatalf("%s exited with its disk full (ext4-like); it should stay up as a follower: %s", old.ID, tailFile(old.Log, 10))
		}
	} else {
		waitFor(t, 20*time.Second, old.ID+" to stop", func() (bool, string) { return !old.Running(), "still running" })
		var ee *exec.ExitError
		if !errors.As(old.proc.err, &ee) || ee.ExitCode() != 75 {
			t.Errorf("%s ended with %v; want exit status 75 (disk full)", old.ID, old.proc.err)
		}
		log := tailFile(old.Log, 40)
		if strings.Contains(log, "goroutine ") || !strings.Contains(log, "keel: data disk full") || !strings.Contains(log, "free space on the disk") {
			t.Errorf("%s's last words do not say clearly that its disk is full and what to do:\n%s", old.ID, log)
		}
	}
	if !strings.Contains(tailFile(old.Log, 400), "data disk full") {
		t.Errorf("%s's log does not say its data disk is full", old.ID)
	}
	disks[old.ID].SetFull(false)
	t.Logf("%s: space back", old.ID)
	if !ext4 {
		old.Start()
	}
	waitDiskState(t, c, old, false, 30*time.Second)
	time.Sleep(2 * time.Second)
	close(stop)
	for _, wg := range wgs {
		wg.Wait()
	}
	st, hangs, n := s.snapshot()
	t.Logf("NFS outcomes %v, %d hangs, %d files acknowledged", st, hangs, n)
	if bad := badStatuses(st, nfsv3.NFS3_OK, nfsv3.NFS3ERR_JUKEBOX); bad != "" || hangs > 0 {
		t.Errorf("NFS clients met %s, %d hangs (first: %s); want only OK and JUKEBOX while one node's disk is full", bad, hangs, s.firstBad)
	}
	if !old.Running() {
		t.Fatalf("%s exited: %s", old.ID, tailFile(old.Log, 10))
	}
	waitConverged(t, c.DataMembers(), 90*time.Second)
	checkAcked(t, c.DataMembers(), s.ackedFiles())
}

// badStatuses lists the counted statuses other than the allowed ones.
func badStatuses(st map[nfsv3.Nfsstat3]int, allowed ...nfsv3.Nfsstat3) string {
	var out []string
	for k, v := range st {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			out = append(out, fmt.Sprintf("status %d ×%d", k, v))
		}
	}
	return strings.Join(out, ", ")
}

// TestDiskFullFollower fills one follower's disk (copy-on-write-like: even
// overwrites fail, so it cannot append a single entry) while NFS clients
// write. The others are a quorum: the clients must see no error at all; the
// full follower must report its disk full and stay up; once space is back it
// catches up by itself to the same state digest.
func TestDiskFullFollower(t *testing.T) {
	c, disks, tun := diskFullCluster(t)
	leader := c.WaitLeader(10*time.Second, "")
	f := c.otherData(leader)[0]
	s := newNFSStats()
	stop := make(chan struct{})
	wg := diskFullWriter(t, tun.Port, "0", s, stop)
	waitFor(t, 30*time.Second, "the NFS client to write 10 files", func() (bool, string) {
		_, _, n := s.snapshot()
		return n >= 10, fmt.Sprintf("%d acknowledged", n)
	})
	fill(disks[f.ID], false)
	fullAt := time.Now()
	t.Logf("%s (follower): disk full", f.ID)
	waitDiskState(t, c, f, true, 15*time.Second)
	waitFor(t, 30*time.Second, "writes to go on without the full follower", func() (bool, string) {
		n := s.ackedSince(fullAt.Add(2 * time.Second))
		return n >= 20, fmt.Sprintf("%d files acknowledged since", n)
	})
	if h, err := f.Hash(); err == nil {
		if lh, err := leader.Hash(); err == nil && h.AppliedIndex >= lh.AppliedIndex {
			t.Errorf("the full follower kept up (applied %d, leader %d): its disk was not full", h.AppliedIndex, lh.AppliedIndex)
		}
	}
	if !f.Running() {
		t.Fatalf("%s exited with its disk full: %s", f.ID, tailFile(f.Log, 10))
	}
	disks[f.ID].SetFull(false)
	t.Logf("%s: space back", f.ID)
	waitDiskState(t, c, f, false, 30*time.Second)
	close(stop)
	wg.Wait()
	st, hangs, n := s.snapshot()
	t.Logf("NFS outcomes %v, %d hangs, %d files acknowledged", st, hangs, n)
	if bad := badStatuses(st, nfsv3.NFS3_OK); bad != "" || hangs > 0 {
		t.Errorf("NFS clients met %s, %d hangs (first: %s); want only OK while a follower's disk is full", bad, hangs, s.firstBad)
	}
	if !f.Running() {
		t.Fatalf("%s exited: %s", f.ID, tailFile(f.Log, 10))
	}
	waitConverged(t, c.DataMembers(), 90*time.Second)
	checkAcked(t, c.DataMembers(), s.ackedFiles())
}

// TestDiskFullAllNodes fills every node's disk (ext4-like). Writes must fail
// at once with NFS3ERR_NOSPC (never an I/O error, never a hang); reads of
// acknowledged files and removals go on; every node reports its disk full.
// Once space is back writes succeed again, the nodes converge, and every
// acknowledged file is intact.
func TestDiskFullAllNodes(t *testing.T) {
	c, disks, tun := diskFullCluster(t)
	s := newNFSStats()
	stop := make(chan struct{})
	wg := diskFullWriter(t, tun.Port, "0", s, stop)
	waitFor(t, 30*time.Second, "the NFS client to write 10 files", func() (bool, string) {
		_, _, n := s.snapshot()
		return n >= 10, fmt.Sprintf("%d acknowledged", n)
	})
	close(stop)
	wg.Wait()
	before := s.ackedFiles()
	for _, f := range disks {
		fill(f, true)
	}
	for _, m := range c.DataMembers() {
		waitDiskState(t, c, m, true, 15*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gc, root, err := dialMountE2E(ctx, tun.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	mode := uint32(0o644)
	start := time.Now()
	_, st, err := gc.Create(ctx, root, "refused", nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
	if err != nil || st != nfsv3.NFS3ERR_NOSPC {
		t.Fatalf("CREATE with every disk full: status %d, %v; want NFS3ERR_NOSPC (%d)", st, err, nfsv3.NFS3ERR_NOSPC)
	}
	t.Logf("CREATE with every disk full: NFS3ERR_NOSPC in %v", time.Since(start).Round(time.Millisecond))
	a := before[0]
	h, st, err := gc.LookupPath(ctx, root, strings.TrimPrefix(a.Path, "/"))
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP %s with every disk full: status %d, %v", a.Path, st, err)
	}
	if _, st, err := gc.WriteHow(ctx, h, 0, []byte("overwrite"), nfsv3.FILE_SYNC); err != nil || st != nfsv3.NFS3ERR_NOSPC {
		t.Fatalf("WRITE with every disk full: status %d, %v; want NFS3ERR_NOSPC", st, err)
	}
	data, err := gc.ReadFile(ctx, h, 1<<20, 1<<20)
	if err != nil || sum(data) != a.Sum {
		t.Fatalf("READ %s with every disk full: %d bytes, %v; want the acknowledged content", a.Path, len(data), err)
	}
	victim := before[len(before)-1]
	if _, st, err := gc.Remove(ctx, root, strings.TrimPrefix(victim.Path, "/")); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("REMOVE with every disk full: status %d, %v; want OK (removals free space)", st, err)
	}
	before = before[:len(before)-1]
	for _, m := range c.DataMembers() {
		if !m.Running() {
			t.Fatalf("%s exited with its disk full: %s", m.ID, tailFile(m.Log, 10))
		}
	}
	for _, f := range disks {
		f.SetFull(false)
	}
	for _, m := range c.DataMembers() {
		waitDiskState(t, c, m, false, 30*time.Second)
	}
	// The leader learns of its peers' room within a second or two.
	back := time.Now()
	var cr *nfsv3.Create3resok
	for i := 0; i < 100; i++ {
		cr, st, err = gc.Create(ctx, root, "after", nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
		if err != nil || st != nfsv3.NFS3ERR_NOSPC || time.Since(back) > 10*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("CREATE after space came back (for %v): status %d, %v", time.Since(back).Round(time.Millisecond), st, err)
	}
	t.Logf("CREATE succeeds %v after every node reported room", time.Since(back).Round(time.Millisecond))
	if _, st, err := gc.WriteHow(ctx, nfsclient.Handle(cr.Obj), 0, []byte("after"), nfsv3.FILE_SYNC); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("WRITE after space came back: status %d, %v", st, err)
	}
	waitConverged(t, c.DataMembers(), 90*time.Second)
	checkAcked(t, c.DataMembers(), before)
}

// dialMountE2E connects to a tunnel's port and mounts /data.
func dialMountE2E(ctx context.Context, port int) (*nfsclient.Client, []byte, error) {
	gc, err := nfsclient.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), nfsclient.Options{Machine: "diskfull"})
	if err != nil {
		return nil, nil, err
	}
	root, st, err := gc.Mount(ctx, "/data")
	if err == nil && st != mount.MNT3_OK {
		err = errors.New("MNT /data: status " + fmt.Sprint(st))
	}
	if err != nil {
		gc.Close()
		return nil, nil, err
	}
	return gc, root, nil
}
