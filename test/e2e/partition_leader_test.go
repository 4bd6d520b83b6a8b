package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/cluster"
	"keel/internal/nfs/nfsclient"
)

// leaseAllowance is how long after being cut off the leader may go on
// answering: the leader lease (leader_lease_timeout, 500 ms by default)
// plus room for raft's lease check interval and a loaded machine.
const leaseAllowance = 2 * time.Second

// TestPartitionedLeaderStopsServing cuts the leader of three data nodes off
// from the other two with a network partition (its raft links to and from
// both silently drop every byte, the processes run on) while a client talks
// NFS to it directly, without a tunnel:
//
//	(a) within the leader lease the old leader refuses to serve: WRITE,
//	    GETATTR and READ sent to it get JUKEBOX or a closed connection,
//	    never success, and keel status shows it is no longer leader;
//	(b) the other two elect a leader, and writes through a keel tunnel and
//	    straight to the new leader's NFS port succeed;
//	(c) no two nodes lead with writes acknowledged in overlapping time:
//	    the old leader's last success precedes the new leader, and every
//	    write any client was told succeeded is there after healing;
//	(d) once healed, the old leader rejoins as a follower and catches up,
//	    and every data node has the same state hash at the same index.
func TestPartitionedLeaderStopsServing(t *testing.T) {
	requireBinary(t)
	c := initCluster(t, Shape{Data: 3}) // default timings: the 500 ms lease is what is tested
	mesh := newPartitionMesh(t, c)
	c.StartAll()
	c.WaitLeader(30*time.Second, "")
	c.exportVolume("data")
	tp := c.startTunnel("client")
	L := c.waitCLILeader(20*time.Second, "")
	others := c.otherData(L)
	t.Logf("leader %s (NFS %s); raft links:%s", L.ID, L.NFSAddr, mesh.stats())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A client of L's own NFS port writes a file and reads it back.
	direct := goClient(t, L.NFSAddr)
	root := nfsMountGo(ctx, t, direct, "/data", L.ID)
	beforeData := content("partition:before.bin", 64<<10)
	hBefore := nfsCreateGoT(ctx, t, direct, root, "before.bin")
	if err := direct.WriteFile(ctx, hBefore, beforeData, 16<<10); err != nil {
		t.Fatalf("write before.bin straight to the leader %s: %v", L.ID, err)
	}
	if got, err := direct.ReadFile(ctx, hBefore, 0, len(beforeData)); err != nil || !bytes.Equal(got, beforeData) {
		t.Fatalf("read before.bin back from the leader %s: %d bytes (sha256 %s), %v", L.ID, len(got), sum(got), err)
	}
	hProbe := nfsCreateGoT(ctx, t, direct, root, "probe.bin")
	var acked fileSet // whole files some client was told were written
	acked.add("/before.bin", beforeData)

	// The tunnel's client mounts now, while L is active.
	tunnelAddr := fmt.Sprintf("127.0.0.1:%d", tp.Port)
	tc := goClient(t, tunnelAddr)
	troot := nfsMountGo(ctx, t, tc, "/data", "the tunnel")

	if st, err := c.cliStatus(); err != nil || st.Leader != L.ID {
		t.Fatalf("before the partition keel status shows leader %q (err %v); want %s still", st.Leader, err, L.ID)
	}

	// Probes of L's NFS port and of every node's state, every 50 ms, from a
	// little before the partition until well after a new leader leads.
	pr := &leaderProber{t: t, addr: L.NFSAddr, handle: hProbe, sem: make(chan struct{}, 48)}
	pr.cli = direct
	watch := &stateWatch{c: c}
	stopProbes := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); pr.run(stopProbes) }()
	go func() { defer bg.Done(); watch.run(stopProbes) }()
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stopProbes)
			bg.Wait()
			pr.wait(10 * time.Second)
		}
	}
	defer stopAll()
	time.Sleep(400 * time.Millisecond)

	// The partition.
	mesh.isolate(L.ID, modeBlackhole)
	partitionedAt := time.Now()
	healed := false
	defer func() {
		if !healed {
			mesh.heal()
		}
	}()
	t.Logf("partitioned %s: its raft links to and from %s and %s drop every byte", L.ID, others[0].ID, others[1].ID)

	// Tunnel writes start at once: the tunnel must carry them to the new
	// leader.
	type tunnelWrite struct {
		path string
		data []byte
		err  error
		at   time.Time
	}
	var twrites []tunnelWrite
	twDone := make(chan struct{})
	go func() {
		defer close(twDone)
		for i := 0; i < 8; i++ {
			name := fmt.Sprintf("t%02d", i)
			data := content("partition:tunnel:"+name, 16<<10+i*1000)
			wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
			err := nfsPutGo(wctx, tc, troot, name, data)
			wcancel()
			twrites = append(twrites, tunnelWrite{path: "/" + name, data: data, err: err, at: time.Now()})
		}
	}()

	// (a) L stops leading within the lease, by its own admin API…
	var downAt time.Time
	waitFor(t, leaseAllowance+time.Second, L.ID+"'s admin API to report it is no longer leader", func() (bool, string) {
		st, err := L.Status()
		if err != nil {
			return false, err.Error()
		}
		if st.Raft.State != "leader" {
			downAt = time.Now()
			return true, ""
		}
		return false, "state " + st.Raft.State
	})
	t.Logf("%s's admin API reports state != leader %v after the partition", L.ID, downAt.Sub(partitionedAt).Round(time.Millisecond))
	if d := downAt.Sub(partitionedAt); d > leaseAllowance {
		t.Errorf("%s still reported itself leader %v after the partition; the lease is 500 ms (allowed %v)", L.ID, d, leaseAllowance)
	}
	// … and by keel status --json, whose entry for L comes from L's admin API.
	if st, err := c.cliStatus(); err != nil {
		t.Errorf("keel status --json: %v", err)
	} else if ns := statusOfMember(st, L.ID); ns == nil || ns.Node == nil {
		t.Errorf("keel status --json has no state for %s (reachable through its admin API): %+v", L.ID, ns)
	} else if ns.Node.Raft.State == "leader" || st.Leader == L.ID {
		t.Errorf("keel status --json %v after the partition: %s state %q, cluster leader %q; want it no longer leader",
			time.Since(partitionedAt).Round(time.Millisecond), L.ID, ns.Node.Raft.State, st.Leader)
	} else {
		t.Logf("keel status --json %v after the partition: %s state %q, cluster leader %q", time.Since(partitionedAt).Round(time.Millisecond),
			L.ID, ns.Node.Raft.State, st.Leader)
	}

	// (b) The other two elect a leader; writes reach it through the tunnel
	// and directly.
	N := c.waitCLILeader(20*time.Second, L.ID)
	t.Logf("keel status shows %s leading %v after the partition", N.ID, time.Since(partitionedAt).Round(time.Millisecond))
	select {
	case <-twDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("writes through the tunnel still running 60s after the partition")
	}
	for _, w := range twrites {
		if w.err != nil {
			t.Errorf("write %s through the tunnel (done %v after the partition): %v", w.path, w.at.Sub(partitionedAt).Round(time.Millisecond), w.err)
			continue
		}
		acked.add(w.path, w.data)
	}
	if len(twrites) > 0 && twrites[0].err == nil {
		t.Logf("first write through the tunnel done %v after the partition (fail-over as the tunnel's client sees it); tunnel %+v",
			twrites[0].at.Sub(partitionedAt).Round(time.Millisecond), tp.Status())
	}
	nc := goClient(t, N.NFSAddr)
	nroot := nfsMountGo(ctx, t, nc, "/data", N.ID)
	newData := content("partition:new-leader.bin", 40<<10)
	if err := nfsPutGo(ctx, nc, nroot, "new-leader.bin", newData); err != nil {
		t.Errorf("write new-leader.bin straight to the new leader %s: %v", N.ID, err)
	} else {
		acked.add("/new-leader.bin", newData)
	}
	// Keep probing L for a while with the new leader in place.
	if d := 3*time.Second - time.Since(partitionedAt); d > 0 {
		time.Sleep(d)
	}
	stopAll()

	// (a) and (c): what L answered.
	res := pr.all()
	var lastOK, firstRefused time.Time
	var lastOKProbe, firstAfter probeResult
	firstRefusedOp := map[string]time.Duration{}
	counts := map[string]int{}
	for _, r := range res {
		after := !r.sent.Before(partitionedAt)
		kind := r.kind()
		if after {
			counts[r.op+" "+kind]++
			if firstAfter.sent.IsZero() && r.op != "DIAL" {
				firstAfter = r
			}
		}
		switch kind {
		case "ok":
			if r.done.After(lastOK) {
				lastOK, lastOKProbe = r.done, r
			}
			if after {
				t.Errorf("%s answered %s OK %v after the partition (sent %v after it): a cut-off leader served",
					L.ID, r.op, r.done.Sub(partitionedAt).Round(time.Millisecond), r.sent.Sub(partitionedAt).Round(time.Millisecond))
			}
		case "refused":
			if after {
				if firstRefused.IsZero() || r.done.Before(firstRefused) {
					firstRefused = r.done
				}
				d := r.done.Sub(partitionedAt)
				if old, ok := firstRefusedOp[r.op]; !ok || d < old {
					firstRefusedOp[r.op] = d
				}
			}
		default:
			if after {
				t.Errorf("%s: %s sent %v after the partition neither succeeded nor was refused (JUKEBOX or closed connection): %s",
					L.ID, r.op, r.sent.Sub(partitionedAt).Round(time.Millisecond), r.describe())
			}
		}
	}
	t.Logf("probes of %s after the partition: %v (%d rounds skipped: too many calls in flight)", L.ID, counts, pr.skipped)
	if lastOK.IsZero() {
		t.Errorf("no probe of %s ever succeeded, not even before the partition", L.ID)
	} else {
		t.Logf("time to stop serving: %s's last successful answer came %v after the partition (a %s sent %v after it); "+
			"the first probe sent after the partition (%s, +%v) got %s at +%v; first refusal (JUKEBOX or closed) +%v, per operation %v",
			L.ID, lastOK.Sub(partitionedAt).Round(time.Millisecond), lastOKProbe.op, lastOKProbe.sent.Sub(partitionedAt).Round(time.Millisecond),
			firstAfter.op, firstAfter.sent.Sub(partitionedAt).Round(time.Millisecond), firstAfter.kind(),
			firstAfter.done.Sub(partitionedAt).Round(time.Millisecond),
			firstRefused.Sub(partitionedAt).Round(time.Millisecond), roundDurations(firstRefusedOp))
	}
	for _, op := range []string{"WRITE", "GETATTR", "READ"} {
		d, ok := firstRefusedOp[op]
		switch {
		case !ok:
			t.Errorf("no %s sent to %s after the partition was refused", op, L.ID)
		case d > leaseAllowance:
			t.Errorf("the first %s refused by %s came %v after the partition; want within %v", op, L.ID, d.Round(time.Millisecond), leaseAllowance)
		}
	}

	// (c) Leadership as every node reported it: L's last report of leading,
	// the new leader's first, and no acknowledged write in between.
	lastL := watch.last(L.ID, partitionedAt)
	firstN := watch.first(N.ID, partitionedAt)
	t.Logf("state reports: %s last said leader %v after the partition, %s first %v after it",
		L.ID, lastL.Sub(partitionedAt).Round(time.Millisecond), N.ID, firstN.Sub(partitionedAt).Round(time.Millisecond))
	if firstN.IsZero() {
		t.Errorf("no state report shows %s leading", N.ID)
	} else {
		if !lastL.IsZero() && !lastL.Before(firstN) {
			t.Logf("note: %s and %s both reported leader between %v and %v after the partition", L.ID, N.ID,
				firstN.Sub(partitionedAt).Round(time.Millisecond), lastL.Sub(partitionedAt).Round(time.Millisecond))
		}
		if !lastOK.IsZero() && !lastOK.Before(firstN) {
			t.Errorf("%s acknowledged a %s %v after the partition, when %s already led (first reported %v after it)", L.ID,
				lastOKProbe.op, lastOK.Sub(partitionedAt).Round(time.Millisecond), N.ID, firstN.Sub(partitionedAt).Round(time.Millisecond))
		}
	}
	if st, err := N.Status(); err == nil && st.Active != nil {
		t.Logf("%s active: %+v (since %v after the partition)", N.ID, *st.Active, st.Active.Since.Sub(partitionedAt).Round(time.Millisecond))
		if !lastOK.IsZero() && !lastOK.Before(st.Active.Since) {
			t.Errorf("%s acknowledged a %s at %v, after %s became active at %v", L.ID, lastOKProbe.op,
				lastOK.Format("15:04:05.000"), N.ID, st.Active.Since.Format("15:04:05.000"))
		}
	}

	// (d) Heal: L rejoins as a follower and catches up.
	mesh.heal()
	healed = true
	healedAt := time.Now()
	waitFor(t, 20*time.Second, L.ID+" to rejoin as a follower of the leader", func() (bool, string) {
		st, err := L.Status()
		if err != nil {
			return false, err.Error()
		}
		cs := c.Status()
		return st.Raft.State == "follower" && cs.Leader != "" && cs.Leader != L.ID && st.Raft.LeaderID == cs.Leader,
			fmt.Sprintf("%s state %s, its leader %q; cluster leader %q", L.ID, st.Raft.State, st.Raft.LeaderID, cs.Leader)
	})
	t.Logf("%s is a follower again %v after healing", L.ID, time.Since(healedAt).Round(time.Millisecond))
	hs := waitConverged(t, c.DataMembers(), 30*time.Second)
	t.Logf("converged %v after healing: %v; raft links:%s", time.Since(healedAt).Round(time.Millisecond), hs, mesh.stats())

	// (c) Every acknowledged write is there: whole files on every data node,
	// and each acknowledged probe WRITE in probe.bin.
	acked.checkOnNodes(t, "data", c.DataMembers())
	acked.checkWithGoClient(ctx, t, tc, troot)
	var probeAcks []probeResult
	for _, r := range res {
		if r.op == "WRITE" && r.kind() == "ok" {
			probeAcks = append(probeAcks, r)
		}
	}
	h, st, err := tc.LookupPath(ctx, troot, "probe.bin")
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("LOOKUP probe.bin through the tunnel after healing: status %d, %v", st, err)
	}
	got, err := tc.ReadFile(ctx, h, 0, 64<<20)
	if err != nil {
		t.Fatalf("read probe.bin through the tunnel after healing: %v", err)
	}
	for _, r := range probeAcks {
		end := int(r.off) + len(r.data)
		if end > len(got) || !bytes.Equal(got[r.off:end], r.data) {
			t.Errorf("probe.bin after healing lacks the WRITE at %d acknowledged by %s %v after the partition", r.off, L.ID,
				r.done.Sub(partitionedAt).Round(time.Millisecond))
		}
	}
	pbSums := map[string]string{}
	for _, m := range c.DataMembers() {
		s, err := m.FileSum("data", "/probe.bin")
		if err != nil {
			t.Errorf("probe.bin on %s: %v", m.ID, err)
		}
		pbSums[m.ID] = s
	}
	if s := sum(got); pbSums[L.ID] != s || pbSums[N.ID] != s {
		t.Errorf("probe.bin read through the tunnel has sha256 %s; on the nodes %v", s, pbSums)
	}
	t.Logf("%d acknowledged files and %d acknowledged probe WRITEs are on every data node", len(acked.paths()), len(probeAcks))
}

// nfsMountGo mounts export through c and returns its root handle.
func nfsMountGo(ctx context.Context, t *testing.T, c *nfsclient.Client, export, where string) []byte {
	t.Helper()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	root, st, err := c.Mount(mctx, export)
	if err != nil || st != mount.MNT3_OK {
		t.Fatalf("MNT %s at %s: status %d, %v", export, where, st, err)
	}
	return root
}

// nfsCreateGoT is nfsCreateGo failing the test on an error.
func nfsCreateGoT(ctx context.Context, t *testing.T, c *nfsclient.Client, dir []byte, name string) []byte {
	t.Helper()
	h, err := nfsCreateGo(ctx, c, dir, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return h
}

// nfsCreateGo creates (UNCHECKED) name in dir and returns its handle.
func nfsCreateGo(ctx context.Context, c *nfsclient.Client, dir []byte, name string) ([]byte, error) {
	res, st, err := c.Create(ctx, dir, name, nfsclient.Unchecked(nfsclient.Set{}))
	if err != nil {
		return nil, err
	}
	if st != nfsv3.NFS3_OK {
		return nil, fmt.Errorf("CREATE %s: status %d", name, st)
	}
	h := nfsclient.Handle(res.Obj)
	if h == nil {
		return nil, fmt.Errorf("CREATE %s: no handle in the reply", name)
	}
	return h, nil
}

// nfsPutGo creates name in dir and writes data to it (FILE_SYNC).
func nfsPutGo(ctx context.Context, c *nfsclient.Client, dir []byte, name string, data []byte) error {
	h, err := nfsCreateGo(ctx, c, dir, name)
	if err != nil {
		return err
	}
	return c.WriteFile(ctx, h, data, 32<<10)
}

// checkWithGoClient reads every file back with a Go NFS client.
func (s *fileSet) checkWithGoClient(ctx context.Context, t *testing.T, c *nfsclient.Client, root []byte) {
	t.Helper()
	for _, p := range s.paths() {
		h, st, err := c.LookupPath(ctx, root, strings.TrimPrefix(p, "/"))
		if err != nil || st != nfsv3.NFS3_OK {
			t.Errorf("LOOKUP %s: status %d, %v", p, st, err)
			continue
		}
		want := s.get(p)
		got, err := c.ReadFile(ctx, h, 0, len(want)+1)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read %s back: %d bytes (sha256 %s), %v; want %d bytes sha256 %s", p, len(got), sum(got), err, len(want), sum(want))
		}
	}
}

// statusOfMember returns id's entry in a cluster status, or nil.
func statusOfMember(st cluster.Status, id string) *cluster.MemberStatus {
	for i := range st.Nodes {
		if st.Nodes[i].ID == id {
			return &st.Nodes[i]
		}
	}
	return nil
}

func roundDurations(m map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range m {
		out[k] = v.Round(time.Millisecond)
	}
	return out
}

// probeResult is one NFS call sent straight to a (possibly deposed) leader.
type probeResult struct {
	op         string // WRITE, GETATTR, READ, or DIAL
	sent, done time.Time
	st         nfsv3.Nfsstat3
	err        error
	off        uint64 // WRITE: where, and what
	data       []byte
}

// kind classifies the outcome: ok, refused (JUKEBOX, or the connection
// closed or refused), or other.
func (r probeResult) kind() string {
	switch {
	case r.err == nil && r.st == nfsv3.NFS3_OK:
		return "ok"
	case r.err == nil && r.st == nfsv3.NFS3ERR_JUKEBOX:
		return "refused"
	case r.err != nil && (errors.Is(r.err, nfsclient.ErrClosed) || strings.Contains(r.err.Error(), "connection refused") ||
		strings.Contains(r.err.Error(), "connection reset")):
		return "refused"
	}
	return "other"
}

func (r probeResult) describe() string {
	return fmt.Sprintf("status %d, err %v, after %v", r.st, r.err, r.done.Sub(r.sent).Round(time.Millisecond))
}

// leaderProber sends WRITE, GETATTR and READ of one file to a node's NFS
// port every 50 ms, each with its own timeout, redialling when the node
// closes the connection.
type leaderProber struct {
	t      *testing.T
	addr   string
	handle []byte
	sem    chan struct{} // bounds the calls in flight

	mu      sync.Mutex
	cli     *nfsclient.Client
	dialled []*nfsclient.Client
	results []probeResult
	skipped int
	wg      sync.WaitGroup
}

func (p *leaderProber) run(stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for round := 0; round < 2000; round++ { // 100 s at most; stop comes long before
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		cli := p.client()
		if cli == nil {
			continue
		}
		for _, op := range []string{"WRITE", "GETATTR", "READ"} {
			select {
			case p.sem <- struct{}{}:
			default:
				p.mu.Lock()
				p.skipped++
				p.mu.Unlock()
				continue
			}
			p.wg.Add(1)
			go func(op string, round int) {
				defer p.wg.Done()
				defer func() { <-p.sem }()
				p.call(cli, op, round)
			}(op, round)
		}
	}
}

// client returns the connection to probe on, dialling a new one if the
// node closed the last; a failed dial is recorded as a DIAL probe.
func (p *leaderProber) client() *nfsclient.Client {
	p.mu.Lock()
	cli := p.cli
	p.mu.Unlock()
	if cli != nil {
		select {
		case <-cli.Done():
		default:
			return cli
		}
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nc, err := nfsclient.Dial(ctx, p.addr, nfsclient.Options{Machine: "keel-e2e-probe"})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.results = append(p.results, probeResult{op: "DIAL", sent: sent, done: time.Now(), st: nfsv3.NFS3ERR_IO, err: err})
		return nil
	}
	p.cli = nc
	p.dialled = append(p.dialled, nc)
	return nc
}

func (p *leaderProber) call(cli *nfsclient.Client, op string, round int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := probeResult{op: op, sent: time.Now()}
	switch op {
	case "WRITE":
		r.off = uint64(round) * 4096
		r.data = content(fmt.Sprintf("probe:%d", round), 4096)
		_, r.st, r.err = cli.Write(ctx, p.handle, r.off, r.data)
	case "GETATTR":
		_, r.st, r.err = cli.Getattr(ctx, p.handle)
	case "READ":
		_, r.st, r.err = cli.Read(ctx, p.handle, 0, 4096)
	}
	r.done = time.Now()
	p.mu.Lock()
	p.results = append(p.results, r)
	p.mu.Unlock()
}

// wait waits for the calls in flight and closes the connections it dialled.
func (p *leaderProber) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		p.t.Errorf("probe calls still in flight %v after the probes stopped", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.dialled {
		c.Close()
	}
}

func (p *leaderProber) all() []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]probeResult(nil), p.results...)
	sort.Slice(out, func(i, j int) bool { return out[i].sent.Before(out[j].sent) })
	return out
}

// stateWatch polls every node's admin API every 50 ms and records when each
// said it was leader: at some moment between asking and the answer.
type stateWatch struct {
	c *Cluster

	mu      sync.Mutex
	leading map[string][][2]time.Time // asked, answered
}

func (w *stateWatch) run(stop <-chan struct{}) {
	w.mu.Lock()
	w.leading = map[string][][2]time.Time{}
	w.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for round := 0; round < 2000; round++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var wg sync.WaitGroup
		for _, m := range w.c.DataMembers() {
			wg.Add(1)
			go func(m *Member) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				asked := time.Now()
				st, err := w.c.Client.NodeStatus(ctx, m.AdminAddr)
				if err == nil && st.Raft.State == "leader" {
					w.mu.Lock()
					w.leading[m.ID] = append(w.leading[m.ID], [2]time.Time{asked, time.Now()})
					w.mu.Unlock()
				}
			}(m)
		}
		wg.Wait()
	}
}

// last returns the latest moment id may have been leader by its reports
// (the answer's arrival), zero if it reported leading at no time after from.
func (w *stateWatch) last(id string, from time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out time.Time
	for _, r := range w.leading[id] {
		if r[1].After(from) && r[1].After(out) {
			out = r[1]
		}
	}
	return out
}

// first returns the earliest moment after from that id may have been
// leader by its reports (when it was asked).
func (w *stateWatch) first(id string, from time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out time.Time
	for _, r := range w.leading[id] {
		if r[0].After(from) && (out.IsZero() || r[0].Before(out)) {
			out = r[0]
		}
	}
	return out
}
