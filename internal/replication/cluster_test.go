package replication

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"keel/internal/fsstate"
	"keel/internal/tlsutil"
)

// testCluster runs raft nodes in this process over real TLS on loopback.
type testCluster struct {
	t      *testing.T
	ca     *tlsutil.CA
	peers  []Peer
	dirs   map[string]string
	nodes  map[string]*Node
	mu     sync.Mutex
	tweaks func(*Config)
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("KEEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tlsFor(t *testing.T, ca *tlsutil.CA, clusterID, id string) (*tls.Config, *tls.Config) {
	t.Helper()
	cert, key, err := ca.IssueNode(id, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.ServerConfig(ca.CertPEM(), cert, key, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsutil.ClientConfig(ca.CertPEM(), cert, key, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	return srv, cli
}

// newTestCluster makes peers with the given roles ("data" or "witness").
func newTestCluster(t *testing.T, roles ...string) *testCluster {
	t.Helper()
	ca, err := tlsutil.NewCA("testcluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ca: ca, dirs: map[string]string{}, nodes: map[string]*Node{}}
	for i, r := range roles {
		id := fmt.Sprintf("n%d", i+1)
		c.peers = append(c.peers, Peer{ID: id, Addr: freeAddr(t), Role: r})
		c.dirs[id] = t.TempDir()
	}
	t.Cleanup(c.closeAll)
	return c
}

func (c *testCluster) start(id string) *Node {
	c.t.Helper()
	var p Peer
	for _, q := range c.peers {
		if q.ID == id {
			p = q
		}
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a close
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	srv, cli := tlsFor(c.t, c.ca, "testcluster", id)
	cfg := Config{
		ID: id, Role: p.Role, Dir: c.dirs[id], Listener: ln, ServerTLS: srv, ClientTLS: cli,
		Peers: c.peers, Bootstrap: true,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond, CommitTimeout: 20 * time.Millisecond,
		Logger: testLogger(c.t).With("node", id),
	}
	if c.tweaks != nil {
		c.tweaks(&cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

func (c *testCluster) startAll() {
	for _, p := range c.peers {
		c.start(p.ID)
	}
}

func (c *testCluster) stop(id string) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		_ = n.Close()
	}
}

func (c *testCluster) closeAll() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stop(id)
	}
}

// leader waits for a data node to lead and returns it.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.IsLeader() && n.cfg.Role == RoleData {
				c.mu.Unlock()
				return n
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no data leader within 15s")
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apply runs a command on the current leader, retrying across elections.
func (c *testCluster) apply(cmd *fsstate.Command) fsstate.Result {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := c.leader()
		if cmd.Time == 0 {
			cmd.Time = fsstate.Time(time.Now().UnixNano())
		}
		res, err := l.Apply(ctxT(c.t), cmd)
		if err == nil {
			return res
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("apply: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converge waits until every running data node has the leader's state hash.
func (c *testCluster) converge() [32]byte {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		l := c.leader()
		want, err := l.Store().Hash()
		if err != nil {
			c.t.Fatal(err)
		}
		li, _, _ := l.Store().Applied()
		same := true
		c.mu.Lock()
		for id, n := range c.nodes {
			if n.Store() == nil {
				continue
			}
			h, err := n.Store().Hash()
			i, _, _ := n.Store().Applied()
			if err != nil || h != want || i != li {
				same = false
				last = fmt.Sprintf("%s at index %d (leader %d)", id, i, li)
			}
		}
		c.mu.Unlock()
		if same {
			return want
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("replicas did not converge: %s", last)
	return [32]byte{}
}

func createFile(t *testing.T, c *testCluster, vol uint64, name string) uint64 {
	t.Helper()
	res := c.apply(&fsstate.Command{Op: fsstate.OpCreate, Vol: vol, Dir: fsstate.RootIno, Name: name, Type: fsstate.TypeRegular, Mode: 0o644})
	if res.Err != 0 {
		t.Fatalf("create %s: %v", name, res.Err)
	}
	return res.Attr.Ino
}

func TestReplicatesToEveryDataNode(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	res := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30})
	if res.Err != 0 {
		t.Fatal(res.Err)
	}
	vol := res.Volume.ID
	ino := createFile(t, c, vol, "f")
	data := []byte("replicated on a quorum before it is acknowledged")
	if r := c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: data}); r.Err != 0 {
		t.Fatal(r.Err)
	}
	c.converge()
	for id, n := range c.nodes {
		got, _, err := n.Store().Read(vol, ino, 0, 1024)
		if err != nil || string(got) != string(data) {
			t.Fatalf("%s reads %q, %v", id, got, err)
		}
	}
}

func TestFollowerRefusesWritesAndReads(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	l := c.leader()
	for id, n := range c.nodes {
		if n == l {
			continue
		}
		for i := 0; i < 200; i++ { // a follower learns the leader at its first heartbeat
			if id, _ := n.Leader(); id == l.cfg.ID {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, err := n.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "x", SizeLimit: 1})
		var nl *NotLeaderError
		if err == nil || !asNotLeader(err, &nl) || nl.LeaderID != l.cfg.ID {
			t.Fatalf("%s: Apply on a follower: %v, want NotLeaderError naming %s", id, err, l.cfg.ID)
		}
		if err := n.ReadIndex(ctxT(t)); !asNotLeader(err, &nl) {
			t.Fatalf("%s: ReadIndex on a follower: %v", id, err)
		}
	}
	if err := l.ReadIndex(ctxT(t)); err != nil {
		t.Fatalf("ReadIndex on the leader: %v", err)
	}
}

func asNotLeader(err error, out **NotLeaderError) bool {
	nl, ok := err.(*NotLeaderError)
	if ok {
		*out = nl
	}
	return ok
}

func TestLeaderLossElectsNewLeaderAndKeepsData(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	var inos []uint64
	for i := 0; i < 20; i++ {
		inos = append(inos, createFile(t, c, vol, fmt.Sprintf("before-%d", i)))
	}
	old := c.leader()
	c.stop(old.cfg.ID)
	nl := c.leader()
	if nl.cfg.ID == old.cfg.ID {
		t.Fatal("the stopped node is still leader")
	}
	// Everything acknowledged before the loss is readable on the new leader.
	if err := nl.ReadIndex(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for i := range inos {
		if _, err := nl.Store().Lookup(vol, fsstate.RootIno, fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatalf("before-%d lost after fail-over: %v", i, err)
		}
	}
	for i := 0; i < 20; i++ {
		createFile(t, c, vol, fmt.Sprintf("after-%d", i))
	}
	c.start(old.cfg.ID)
	c.converge()
	v, err := c.nodes[old.cfg.ID].Store().VolumeByID(vol)
	if err != nil || v.Inodes != 41 {
		t.Fatalf("restarted node: volume %+v, %v; want 41 inodes", v, err)
	}
}

// TestFollowerCatchUpFromLog: a follower that was down receives only the
// entries it missed.
func TestFollowerCatchUpFromLog(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	ino := createFile(t, c, vol, "f")
	c.converge()
	var follower string
	for id, n := range c.nodes {
		if !n.IsLeader() {
			follower = id
		}
	}
	c.stop(follower)
	chunk := make([]byte, fsstate.MaxEntryData)
	for i := 0; i < 16; i++ { // 4 MiB while it is away
		chunk[0] = byte(i)
		if r := c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Offset: uint64(i * len(chunk)), Data: chunk}); r.Err != 0 {
			t.Fatal(r.Err)
		}
	}
	n := c.start(follower)
	c.converge()
	got := n.Status().ReceivedBytes
	if got < 4<<20 || got > 6<<20 {
		t.Fatalf("follower received %d bytes to catch up on 4 MiB", got)
	}
	t.Logf("catch-up of 4 MiB of writes: %d bytes received", got)
}

// TestFollowerCatchUpBySnapshot: past the retained log a follower gets a
// snapshot (a Pebble checkpoint streamed file by file) and then the rest.
func TestFollowerCatchUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.tweaks = func(cfg *Config) { cfg.TrailingLogs = 5; cfg.SnapshotThreshold = 1 << 40; cfg.walSegmentSize = 4096 }
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	c.converge()
	var follower string
	for id, n := range c.nodes {
		if !n.IsLeader() {
			follower = id
		}
	}
	c.stop(follower)
	buf := make([]byte, 64<<10)
	crand.Read(buf) // incompressible: the stream carries every byte
	for i := 0; i < 50; i++ {
		ino := createFile(t, c, vol, fmt.Sprintf("f%d", i))
		if r := c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: buf}); r.Err != 0 {
			t.Fatal(r.Err)
		}
	}
	l := c.leader()
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := l.wal.FirstIndex(); first <= 2 {
		t.Fatalf("log not compacted after snapshot: first index %d", first)
	}
	createFile(t, c, vol, "after-snapshot")
	n := c.start(follower)
	c.converge()
	if st := n.Status(); st.SnapshotIndex == 0 {
		t.Fatalf("follower caught up without installing a snapshot: %+v", st)
	}
	if _, err := n.Store().Lookup(vol, fsstate.RootIno, "after-snapshot"); err != nil {
		t.Fatal(err)
	}
	// What an operator watches: one install done, the stream's bytes
	// counted (50 × 64 KiB were written), nothing in progress any more.
	m := n.metrics
	if got := testutil.ToFloat64(m.SnapshotInstalls.WithLabelValues("installed")); got != 1 {
		t.Errorf("keel_raft_snapshot_installs_total{result=installed} = %v; want 1", got)
	}
	if got := testutil.ToFloat64(m.SnapshotInstallBytes); got < 50*64<<10 {
		t.Errorf("keel_raft_snapshot_install_received_bytes_total = %v; want at least the %d bytes written", got, 50*64<<10)
	}
	for _, phase := range []string{"receive", "restore"} {
		if got := testutil.ToFloat64(m.SnapshotInstalling.WithLabelValues(phase)); got != 0 {
			t.Errorf("keel_raft_snapshot_install_in_progress{phase=%s} = %v after the install; want 0", phase, got)
		}
	}
	if in := n.Status().SnapshotInstall; in != nil {
		t.Errorf("status shows a snapshot install in progress after it finished: %+v", in)
	}
	// The installed state survives a restart of the follower.
	c.stop(follower)
	c.start(follower)
	c.converge()
}

func TestWitnessNeverKeepsLeadership(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleWitness)
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	createFile(t, c, vol, "a")
	w := c.nodes["n3"]
	if w.Store() != nil {
		t.Fatal("a witness must hold no filesystem state")
	}
	// Make the witness leader by force: stop both data nodes' leadership by
	// transferring to it, then check it hands leadership back.
	l := c.leader()
	if err := l.Transfer("n3", c.peers[2].Addr); err != nil {
		t.Fatalf("transfer to witness: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nl := c.leader()
		if nl.cfg.Role == RoleData && !w.IsLeader() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("witness kept leadership")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := w.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpNoop}); err == nil {
		t.Fatal("a witness accepted a change")
	}
	// Lose the data leader: the other data node leads with the witness's vote.
	c.stop(c.leader().cfg.ID)
	createFile(t, c, vol, "b")
	if w.Status().AppliedIndex == 0 {
		t.Fatal("witness does not follow the log")
	}
}

func TestForeignPeerRefused(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	l := c.leader()
	other, err := tlsutil.NewCA("othercluster")
	if err != nil {
		t.Fatal(err)
	}
	_, cli := tlsFor(t, other, "othercluster", "n1")
	conn, err := tls.Dial("tcp", c.peers[0].Addr, cli)
	if err == nil {
		// TLS 1.3 may report the server's refusal only on first read.
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a peer with a foreign certificate was accepted")
	}
	if !l.IsLeader() {
		t.Fatal("leadership disturbed")
	}
}

func TestDiskFullRefusesWritesKeepsReadsAndRecovers(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.tweaks = func(cfg *Config) { cfg.freeSpace = func(string) uint64 { return free.Load() } }
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	ino := createFile(t, c, vol, "kept")
	c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: []byte("acknowledged")})
	l := c.leader()
	before := l.Status().LastIndex

	free.Store(1 << 20)      // below the 256 MiB reserve
	time.Sleep(freeCacheAge) // no real disk fills up 1 TiB faster than the guard's cached reading ages
	_, err := l.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Offset: 100, Data: []byte("x"), Time: 1})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ENOSPC", err)
	}
	if got := l.Status().LastIndex; got != before {
		t.Fatalf("a refused write reached the log: last index %d → %d", before, got)
	}
	// Reads go on; removals (which free space) too.
	if err := l.ReadIndex(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := l.Store().Read(vol, ino, 0, 100); string(got) != "acknowledged" {
		t.Fatalf("read on a full disk: %q", got)
	}
	if r, err := l.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpRemove, Vol: vol, Dir: fsstate.RootIno, Name: "kept", Time: 2}); err != nil || r.Err != 0 {
		t.Fatalf("remove on a full disk: %v %v", err, r.Err)
	}
	free.Store(1 << 40)
	createFile(t, c, vol, "after")
	c.converge()
}

func TestWitnessCompactsOnlyWhatDataNodesHold(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleWitness)
	c.tweaks = func(cfg *Config) { cfg.walSegmentSize = 4096 }
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	buf := make([]byte, 8<<10)
	for i := 0; i < 40; i++ {
		ino := createFile(t, c, vol, fmt.Sprintf("f%d", i))
		c.apply(&fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: buf})
	}
	c.converge()
	w := c.nodes["n3"]
	if err := w.WaitApplied(ctxT(t), w.raft.CommitIndex()); err != nil {
		t.Fatal(err)
	}
	upTo := w.raft.LastIndex() - 20 // pretend one data node holds only this much
	if _, err := w.CompactWitnessLog(upTo); err != nil {
		t.Fatal(err)
	}
	first, _ := w.wal.FirstIndex()
	if first > upTo+1 {
		t.Fatalf("witness dropped entries a data node needs: first index %d, data node holds up to %d", first, upTo)
	}
	if first < 10 {
		t.Fatalf("witness did not compact: first index %d (up to %d allowed)", first, upTo)
	}
	var l raft.Log
	for i := upTo + 1; i <= w.raft.LastIndex(); i++ {
		if err := w.wal.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d missing after compaction: %v", i, err)
		}
	}
	if _, err := c.nodes["n1"].CompactWitnessLog(5); err == nil {
		t.Fatal("a data node compacted as a witness")
	}
}

func TestQuorumWithoutRoomRefusesWrites(t *testing.T) {
	c := newTestCluster(t, RoleData, RoleData, RoleData)
	c.startAll()
	vol := c.apply(&fsstate.Command{Op: fsstate.OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}).Volume.ID
	ino := createFile(t, c, vol, "f")
	l := c.leader()
	var others []string
	for id := range c.nodes {
		if id != l.cfg.ID {
			others = append(others, id)
		}
	}
	write := func() error {
		_, err := l.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpWrite, Vol: vol, Ino: ino, Data: []byte("x"), Time: 1})
		return err
	}
	l.SetPeerDiskFull(others[0], true) // one full follower: the other two are a quorum
	if err := write(); err != nil {
		t.Fatalf("write with one follower full: %v", err)
	}
	l.SetPeerDiskFull(others[1], true)
	if err := write(); !errors.Is(err, ErrQuorumDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write with both followers full: %v, want ErrQuorumDiskFull (ENOSPC)", err)
	}
	if r, err := l.Apply(ctxT(t), &fsstate.Command{Op: fsstate.OpRemove, Vol: vol, Dir: fsstate.RootIno, Name: "f", Time: 2}); err != nil || r.Err != 0 {
		t.Fatalf("remove with both followers full: %v %v", err, r.Err)
	}
	l.SetPeerDiskFull(others[0], false)
	createFile(t, c, vol, "after")
}
