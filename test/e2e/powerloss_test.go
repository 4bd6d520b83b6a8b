package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"keel/internal/config"
	"keel/internal/nfs/nfsclient"
	"keel/internal/testkit/faultfs"
)

// Power loss, simulated: every data node's data directory is on its own
// faultfs (internal/testkit/faultfs), which keeps every byte written and not
// yet fsync'd in memory. A power loss kills the node with SIGKILL, drops
// those bytes (Crash), and mounts the backing directory again, as a machine
// that comes back finds its disk.

// disk is a member's data directory on its own faultfs mount.
type disk struct {
	m       *Member
	fs      *faultfs.FS
	crashes int
	dropped []int64 // unsynced bytes each crash dropped
}

// mountDisks puts every data member's data directory on a faultfs mount, or
// skips the test saying why it cannot. Call it before the members start.
func mountDisks(t *testing.T, c *Cluster) map[string]*disk {
	t.Helper()
	if err := faultfs.Available(); err != nil {
		t.Skipf("skipping: data directories on faultfs: %v", err)
	}
	disks := map[string]*disk{}
	// Registered after the cluster's own cleanup, so it runs first: kill
	// the processes, then unmount, so t.TempDir can remove the directories.
	t.Cleanup(func() {
		for _, d := range disks {
			d.m.kill()
			_ = d.fs.Crash()
		}
	})
	for _, m := range c.DataMembers() {
		cfg, err := config.Load(m.Config)
		if err != nil {
			t.Fatal(err)
		}
		f, err := faultfs.MountOver(cfg.Node.DataDir)
		if err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		disks[m.ID] = &disk{m: m, fs: f}
	}
	return disks
}

// crash drops every byte the disk had not synced when its power was cut
// and mounts it again. The member must be dead. It does not start it.
func (d *disk) crash(t *testing.T, unsynced int64) {
	t.Helper()
	if d.m.Running() {
		t.Fatalf("crash %s's disk: the node still runs", d.m.ID)
	}
	if err := d.fs.Crash(); err != nil {
		t.Fatalf("crash %s's disk: %v", d.m.ID, err)
	}
	f, err := d.fs.Remount()
	if err != nil {
		t.Fatalf("mount %s's disk again: %v", d.m.ID, err)
	}
	d.fs = f
	d.crashes++
	d.dropped = append(d.dropped, unsynced)
}

// powerLoss cuts the power of the given members at once: every disk stops
// (faultfs Cut: nothing more reaches it, not even an fsync in flight), every
// process gets SIGKILL, then each disk's unsynced bytes are dropped and it
// is mounted again. It returns the bytes dropped per member.
func powerLoss(t *testing.T, disks map[string]*disk, ms ...*Member) map[string]int64 {
	t.Helper()
	waitDirty(disks, ms, 3*time.Second)
	out := map[string]int64{}
	for _, m := range ms {
		out[m.ID] = disks[m.ID].fs.Cut()
	}
	for _, m := range ms {
		m.signal(syscall.SIGKILL)
	}
	for _, m := range ms {
		m.kill() // waits until it is gone
	}
	for _, m := range ms {
		disks[m.ID].crash(t, out[m.ID])
	}
	return out
}

// waitDirty waits, at most d, until one of ms's disks holds bytes written
// and not yet synced: the power is then cut while writes are in flight, not
// just after an fsync emptied the disk's cache. (Under load a slowed disk is
// dirty most of the time, but the test's own polls, which follow the acks,
// tend to land just after an fsync.)
func waitDirty(disks map[string]*disk, ms []*Member, d time.Duration) {
	end := time.Now().Add(d)
	for i := 0; i < 100_000 && time.Now().Before(end); i++ {
		for _, m := range ms {
			if disks[m.ID].fs.DirtyBytes() > 0 {
				return
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// requireDropped fails the test unless some crash dropped unsynced data:
// otherwise the test did not exercise lost writes at all.
func requireDropped(t *testing.T, disks map[string]*disk) {
	t.Helper()
	var all []string
	var total int64
	for _, m := range sortedDisks(disks) {
		all = append(all, fmt.Sprintf("%s %v", m.m.ID, m.dropped))
		for _, n := range m.dropped {
			total += n
		}
	}
	t.Logf("unsynced bytes dropped per crash: %s", strings.Join(all, "; "))
	if total == 0 {
		t.Errorf("no power loss dropped any unsynced byte: the test did not exercise lost writes")
	}
}

func sortedDisks(disks map[string]*disk) []*disk {
	var out []*disk
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if d, ok := disks[id]; ok {
			out = append(out, d)
		}
	}
	return out
}

// corruptLine matches log lines of a node that found its storage damaged.
var corruptLine = regexp.MustCompile(`(?i)corrupt|checksum|panic|torn|mismatch|fatal`)

// checkCleanStart fails the test if m's log since its last start has a
// line that reports damaged storage, or m no longer runs.
func checkCleanStart(t *testing.T, m *Member) {
	t.Helper()
	if !m.Running() {
		t.Errorf("%s exited after its restart (%v); end of its log:\n%s", m.ID, m.proc.err, tailFile(m.Log, 30))
		return
	}
	b, err := os.ReadFile(m.Log)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.LastIndex(s, "\n=== e2e "); i >= 0 {
		s = s[i:]
	}
	for _, line := range strings.Split(s, "\n") {
		if corruptLine.MatchString(line) {
			t.Errorf("%s after power loss: %s", m.ID, line)
		}
	}
}

// nfsWriter writes files /<prefix>-f<i> of the "data" export through the
// leader's NFS port with keel's Go client: CREATE, then WRITEs with
// FILE_SYNC. A file is acknowledged when every call answered NFS3_OK. On an
// error it dials whichever node leads then and moves on to the next file.
type nfsWriter struct {
	c      *Cluster
	prefix string
	size   func(i int) int
	acks   *ackLog

	mu   sync.Mutex
	errs []timedErr
}

func (w *nfsWriter) run(ctx context.Context) {
	var cli *nfsclient.Client
	var root []byte
	defer func() {
		if cli != nil {
			cli.Close()
		}
	}()
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.errs = append(w.errs, timedErr{At: time.Now(), Err: err})
		w.mu.Unlock()
		if cli != nil {
			cli.Close()
			cli = nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for i := 0; i < 100_000 && ctx.Err() == nil; {
		if cli == nil {
			var err error
			if cli, root, err = w.dial(ctx); err != nil {
				fail(err)
				continue
			}
		}
		path := fmt.Sprintf("/%s-f%05d", w.prefix, i)
		data := content("data:"+path, w.size(i))
		i++
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := nfsPutGo(cctx, cli, root, path[1:], data)
		cancel()
		if err != nil {
			fail(fmt.Errorf("nfs put %s: %w", path, err))
			continue
		}
		w.acks.add(path, sum(data))
	}
}

// dial connects to the node that leads now and mounts /data.
func (w *nfsWriter) dial(ctx context.Context) (*nfsclient.Client, []byte, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := w.c.Client.Status(sctx, time.Second)
	if st.Leader == "" {
		return nil, nil, fmt.Errorf("no leader to dial")
	}
	var addr string
	for _, m := range w.c.Members {
		if m.ID == st.Leader {
			addr = m.NFSAddr
		}
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("leader %s has no NFS address", st.Leader)
	}
	cli, err := nfsclient.Dial(sctx, addr, nfsclient.Options{Machine: "keel-e2e-" + w.prefix})
	if err != nil {
		return nil, nil, err
	}
	root, mst, err := cli.Mount(sctx, "/data")
	if err == nil && mst != mount.MNT3_OK {
		err = fmt.Errorf("MNT /data: status %d", mst)
	}
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return cli, root, nil
}

func (w *nfsWriter) errors() []timedErr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]timedErr(nil), w.errs...)
}

// load is a set of concurrent clients writing files with FILE_SYNC
// semantics: two through the admin API (PUT, answered once committed on a
// quorum), one through NFS.
type load struct {
	acks   *ackLog
	admin  []*writer
	nfs    *nfsWriter
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoad starts the writers of round prefix. Sizes run from 1 KiB to
// about 600 KiB, so that a file is one log entry or several.
func startLoad(c *Cluster, prefix string, acks *ackLog) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{acks: acks, cancel: cancel}
	size := func(j int) int { return 1024 + (j*7919)%(600<<10) }
	for i := range 2 {
		w := &writer{client: c.Client, vol: "data", prefix: fmt.Sprintf("%s-a%d", prefix, i), size: size,
			timeout: 10 * time.Second, acks: acks}
		l.admin = append(l.admin, w)
		l.wg.Add(1)
		go func() { defer l.wg.Done(); w.run(ctx) }()
	}
	l.nfs = &nfsWriter{c: c, prefix: prefix + "-nfs", size: size, acks: acks}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.nfs.run(ctx) }()
	return l
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

// errorsBefore returns every writer's errors before t.
func (l *load) errorsBefore(t time.Time) []timedErr {
	var out []timedErr
	for _, w := range l.admin {
		out = append(out, w.errorsBefore(t)...)
	}
	for _, e := range l.nfs.errors() {
		if e.At.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// waitAcks waits until n more writes than before are acknowledged.
func waitAcks(t *testing.T, acks *ackLog, before, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d more acknowledged writes", n), func() (bool, string) {
		k := len(acks.all()) - before
		return k >= n, fmt.Sprintf("%d acknowledged", k)
	})
}

// waitReplayed writes a marker file (retrying until a leader commits it),
// then waits until every data node has applied what that leader had applied
// then. After a restart every node is at what its state store had flushed
// (the same on all, often nothing): equal applied indexes prove nothing
// until they have replayed the log.
func waitReplayed(t *testing.T, c *Cluster, acks *ackLog, tag string, timeout time.Duration) {
	t.Helper()
	path := "/marker-" + tag
	data := content("data:"+path, 4096)
	var err error
	deadline := time.Now().Add(timeout)
	for i := 0; i < 100 && time.Now().Before(deadline); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.Client.PutFile(ctx, "data", path, data, true)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("write %s after the power loss: %v", path, err)
	}
	acks.add(path, sum(data))
	var target uint64
	waitFor(t, timeout, "the leader's applied index", func() (bool, string) {
		for _, m := range c.DataMembers() {
			if st, err := m.Status(); err == nil && st.Raft.State == "leader" {
				target = st.Raft.AppliedIndex
				return true, ""
			}
		}
		return false, "no leader"
	})
	waitFor(t, timeout, fmt.Sprintf("every data node to apply index %d", target), func() (bool, string) {
		var seen []string
		ok := true
		for _, m := range c.DataMembers() {
			st, err := m.Status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", m.ID, err)
			}
			seen = append(seen, fmt.Sprintf("%s at %d", m.ID, st.Raft.AppliedIndex))
			ok = ok && st.Raft.AppliedIndex >= target
		}
		return ok, strings.Join(seen, ", ")
	})
}

// slowDisks makes every fsync of every disk take d longer (0: no delay).
// During a load this keeps bytes written and not yet synced on the disks
// at almost any moment, as on a real disk under load: otherwise keel's
// fsync right after each write leaves almost nothing for a power loss to
// drop.
func slowDisks(disks map[string]*disk, d time.Duration) {
	for _, k := range disks {
		k.fs.SetFsyncDelay(d)
	}
}

// afterRecovery is what every power-loss test requires once the nodes run
// again: a write accepted (the marker of waitReplayed), one state digest on
// every data node, every acknowledged file on every one with its exact
// bytes, and no node reporting damaged storage.
func afterRecovery(t *testing.T, c *Cluster, acks *ackLog, tag string) {
	t.Helper()
	c.WaitLeader(60*time.Second, "")
	waitReplayed(t, c, acks, tag, 90*time.Second)
	hs := waitConverged(t, c.DataMembers(), 90*time.Second)
	checkAcked(t, c.DataMembers(), acks.all())
	for _, m := range c.DataMembers() {
		checkCleanStart(t, m)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%s: converged at index %d, %d acknowledged files on every node", tag, hs[0].AppliedIndex, len(acks.all()))
}

// TestPowerLossAllNodes writes FILE_SYNC files from concurrent clients (two
// on the admin API, one on NFS), then cuts the power of every machine at
// once, at a random moment of the load: kill -9 of every node and every
// unsynced byte of every data directory dropped. The nodes must start again
// without reporting damaged storage, keep every acknowledged file with its
// exact bytes, converge to one state digest and take writes again. Three
// rounds; at least one crash must have dropped unsynced data.
func TestPowerLossAllNodes(t *testing.T) {
	c := initCluster(t, Shape{Data: 3})
	disks := mountDisks(t, c)
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	acks := &ackLog{}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	for round := range 3 {
		before := len(acks.all())
		slowDisks(disks, time.Duration(5+rng.IntN(30))*time.Millisecond)
		l := startLoad(c, fmt.Sprintf("r%d", round), acks)
		waitAcks(t, acks, before, 30, 60*time.Second)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond) // a random moment of the load
		cut := time.Now()
		dropped := powerLoss(t, disks, c.DataMembers()...)
		l.stop()
		for _, e := range l.errorsBefore(cut) {
			t.Errorf("round %d: a write failed while every node was up: %v", round, e.Err)
		}
		t.Logf("round %d: %d writes acknowledged, then power lost everywhere; unsynced bytes dropped: %v",
			round, len(acks.all())-before, dropped)
		c.StartAll()
		afterRecovery(t, c, acks, fmt.Sprintf("r%d", round))
	}
	requireDropped(t, disks)
}

// TestPowerLossMinority cuts the power of one node while the clients keep
// writing: a follower, then the leader. The others go on (writes are
// acknowledged meanwhile); the node comes back, catches up, and every
// acknowledged file is on every node with one state digest.
func TestPowerLossMinority(t *testing.T) {
	c := initCluster(t, Shape{Data: 3})
	disks := mountDisks(t, c)
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	acks := &ackLog{}
	for round, which := range []string{"follower", "leader"} {
		before := len(acks.all())
		slowDisks(disks, 20*time.Millisecond)
		l := startLoad(c, fmt.Sprintf("%s%d", which, round), acks)
		waitAcks(t, acks, before, 30, 60*time.Second)
		leader := c.WaitLeader(20*time.Second, "")
		victim := leader
		if which == "follower" {
			victim = c.otherData(leader)[0]
		}
		dropped := powerLoss(t, disks, victim)
		cut := len(acks.all())
		waitAcks(t, acks, cut, 20, 60*time.Second) // the others go on without it
		victim.Start()
		waitAcks(t, acks, len(acks.all()), 10, 60*time.Second)
		l.stop()
		slowDisks(disks, 0)
		t.Logf("round %d: power lost on the %s %s (%d unsynced bytes dropped); %d writes acknowledged while it was down, %d in the round",
			round, which, victim.ID, dropped[victim.ID], len(acks.all())-cut, len(acks.all())-before)
		afterRecovery(t, c, acks, fmt.Sprintf("%s%d", which, round))
	}
	requireDropped(t, disks)
}
