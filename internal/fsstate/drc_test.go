package fsstate

import (
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// reqID returns a request id whose argument hash is derived from args.
func reqID(client string, xid, proc uint32, args string) *RequestID {
	id := &RequestID{Client: client, XID: xid, Proc: proc}
	copy(id.ArgHash[:], args)
	return id
}

// countKeys returns how many keys of the store start with prefix.
func countKeys(t testing.TB, s *Store, prefix byte) int {
	t.Helper()
	n := 0
	err := s.view(func(r reader) error {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		return it.Error()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// replayed checks that r is a replay of orig.
func replayed(t testing.TB, r, orig Result) {
	t.Helper()
	if !r.Replayed {
		t.Fatalf("not replayed: %+v", r)
	}
	r.Replayed = false
	if !reflect.DeepEqual(r, orig) {
		t.Fatalf("replayed result differs\n got %+v\nwant %+v", r, orig)
	}
}

func (h *harness) lookupReply(id *RequestID) (Result, bool) {
	h.t.Helper()
	r, ok, err := h.s.LookupReply(*id)
	if err != nil {
		h.t.Fatalf("LookupReply: %v", err)
	}
	return r, ok
}

func TestDRCCreateReplayed(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	id := reqID("10.0.0.7:789", 0x1234, 8, "create f 0644")
	create := func() *Command {
		return &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644,
			CMode: CreateGuarded, Req: id}
	}
	first := h.ok(create())
	if first.Replayed {
		t.Fatal("first execution marked replayed")
	}
	if got, ok := h.lookupReply(id); !ok {
		t.Fatal("no reply recorded")
	} else {
		replayed(t, got, first)
	}
	before := h.hash()
	idx0, _, _ := h.s.Applied()
	// The retransmission (a later command, as a new leader would propose it)
	// gets the original answer, not EEXIST, and changes nothing.
	again := h.apply(create())
	replayed(t, again, first)
	if again.Attr.Ino != first.Attr.Ino || again.Attr.Gen != first.Attr.Gen {
		t.Fatalf("replay names inode %d gen %d, not %d gen %d", again.Attr.Ino, again.Attr.Gen, first.Attr.Ino, first.Attr.Gen)
	}
	if h.hash() != before {
		t.Fatal("a replayed command changed the state")
	}
	if idx, _, _ := h.s.Applied(); idx != idx0+1 {
		t.Fatalf("applied index %d, want %d", idx, idx0+1)
	}
	if names := h.names(v.ID, RootIno); !reflect.DeepEqual(names, []string{"f"}) {
		t.Fatalf("directory holds %q", names)
	}
	if got := h.vol(v.ID); got.Inodes != 2 {
		t.Fatalf("%d inodes, want 2", got.Inodes)
	}
	// Without a request id the same command is a new one.
	c := create()
	c.Req = nil
	h.fail(c, syscall.EEXIST)
}

func TestDRCRemoveRetransmitted(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	id := reqID("client-a", 77, 12, "remove f")
	remove := func() *Command { return &Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "f", Req: id} }
	first := h.ok(remove())
	if !first.Dir.Valid {
		t.Fatal("no directory wcc")
	}
	h.noEntry(v.ID, RootIno, "f")
	again := h.apply(remove())
	if again.Err != 0 {
		t.Fatalf("retransmitted remove: %v", again.Err)
	}
	replayed(t, again, first)
	if _, err := h.s.GetAttr(v.ID, f.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("removed inode: %v", err)
	}
	// The same remove as a new request (new xid) fails as it should.
	c := remove()
	c.Req = reqID("client-a", 78, 12, "remove f")
	if r := h.apply(c); r.Err != syscall.ENOENT || r.Replayed {
		t.Fatalf("new remove: %+v", r)
	}
}

func TestDRCRecordsFailures(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	h.file(v.ID, RootIno, "f")
	id := reqID("c", 1, 9, "mkdir f")
	mkdir := func() *Command {
		return &Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "f", Type: TypeDir, Mode: 0o755, Req: id}
	}
	before := countKeys(t, h.s, pReply)
	first := h.apply(mkdir())
	if first.Err != syscall.EEXIST {
		t.Fatalf("mkdir over a file: %v", first.Err)
	}
	if n := countKeys(t, h.s, pReply); n != before+1 {
		t.Fatalf("%d reply records after a failed request, want %d", n, before+1)
	}
	// Even once the name is free, the retransmission gets the first answer.
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: RootIno, Name: "f"})
	replayed(t, h.apply(mkdir()), first)
	h.noEntry(v.ID, RootIno, "f")
}

func TestDRCSameXIDDifferentArgs(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	a := reqID("c", 5, 8, "create a")
	b := reqID("c", 5, 8, "create b")
	ra := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "a", Type: TypeRegular, Mode: 0o644, Req: a})
	rb := h.ok(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "b", Type: TypeRegular, Mode: 0o644, Req: b})
	if rb.Replayed || rb.Attr.Ino == ra.Attr.Ino {
		t.Fatalf("a reused xid with other arguments was not applied: %+v", rb)
	}
	if names := h.names(v.ID, RootIno); !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Fatalf("directory holds %q", names)
	}
	// The newer request replaced the record (and its time index entry).
	if _, ok := h.lookupReply(a); ok {
		t.Fatal("the replaced reply is still found")
	}
	if r, ok := h.lookupReply(b); !ok {
		t.Fatal("the new reply is not found")
	} else {
		replayed(t, r, rb)
	}
	if n, m := countKeys(t, h.s, pReply), countKeys(t, h.s, pReplyTime); n != 1 || m != 1 {
		t.Fatalf("%d records and %d index entries, want 1 and 1", n, m)
	}
	// Same xid from another client, or for another procedure, is another
	// request too.
	for _, id := range []*RequestID{reqID("d", 5, 8, "create b"), reqID("c", 5, 9, "create b")} {
		r := h.apply(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "b", Type: TypeRegular, Mode: 0o644,
			CMode: CreateGuarded, Req: id})
		if r.Replayed || r.Err != syscall.EEXIST {
			t.Fatalf("request %+v: %+v", id, r)
		}
	}
	// LookupReply wants the argument hash to match.
	other := *b
	other.ArgHash[15] ^= 1
	if _, ok := h.lookupReply(&other); ok {
		t.Fatal("LookupReply ignores the argument hash")
	}
}

func TestDRCExpiry(t *testing.T) {
	h := newHarness(t)
	t0 := h.now
	noop := func(at Time, xid uint32) *Command {
		return &Command{Op: OpNoop, Time: at, Req: reqID("c", xid, 0, fmt.Sprint(xid))}
	}
	const old = drcMaxExpire + 36
	for i := range old {
		h.ok(noop(t0+Time(i), uint32(i)))
	}
	// A record exactly at the cutoff is kept; one made before it is not.
	edge := t0 + old
	h.ok(noop(edge, 1000))
	if n := countKeys(t, h.s, pReply); n != old+1 {
		t.Fatalf("%d records, want %d (nothing expired yet)", n, old+1)
	}
	now := edge + DRCRetention
	h.ok(noop(now, 2000))
	// The oldest drcMaxExpire went, oldest first.
	if n := countKeys(t, h.s, pReply); n != old+2-drcMaxExpire {
		t.Fatalf("%d records, want %d", n, old+2-drcMaxExpire)
	}
	if m := countKeys(t, h.s, pReplyTime); m != old+2-drcMaxExpire {
		t.Fatalf("%d index entries, want %d", m, old+2-drcMaxExpire)
	}
	for i := range old {
		_, ok := h.lookupReply(noop(0, uint32(i)).Req)
		if want := i >= drcMaxExpire; ok != want {
			t.Fatalf("record %d found=%v, want %v", i, ok, want)
		}
	}
	// An expired record still present is not replayed: the request is
	// applied again, and its record renewed.
	stale := noop(now, drcMaxExpire)
	if r := h.apply(stale); r.Replayed || r.Err != 0 {
		t.Fatalf("expired request: %+v", r)
	}
	// That command deleted the rest of the old ones.
	for i := range old {
		_, ok := h.lookupReply(noop(0, uint32(i)).Req)
		if want := i == drcMaxExpire; ok != want {
			t.Fatalf("record %d found=%v, want %v", i, ok, want)
		}
	}
	for _, xid := range []uint32{1000, 2000} {
		if _, ok := h.lookupReply(noop(0, xid).Req); !ok {
			t.Fatalf("record %d expired early", xid)
		}
	}
	// Retransmitted within the retention, it is replayed.
	if r := h.apply(noop(now+1, drcMaxExpire)); !r.Replayed {
		t.Fatalf("renewed request not replayed: %+v", r)
	}
	// Much later everything expires, a bounded number at a time.
	h.ok(noop(now+10*DRCRetention, 3000))
	if n, m := countKeys(t, h.s, pReply), countKeys(t, h.s, pReplyTime); n != 1 || m != 1 {
		t.Fatalf("%d records and %d index entries left, want 1 and 1", n, m)
	}
	// Commands without a request id expire nothing.
	h.ok(&Command{Op: OpNoop, Time: now + 100*DRCRetention})
	if n := countKeys(t, h.s, pReply); n != 1 {
		t.Fatalf("%d records", n)
	}
}

func TestDRCExtremeTimes(t *testing.T) {
	h := newHarness(t)
	// Times near the ends of the range neither overflow nor misorder.
	for i, at := range []Time{-1 << 63, -1, 1, 1<<63 - 1} {
		h.ok(&Command{Op: OpNoop, Time: at, Req: reqID("c", uint32(i), 0, "x")})
	}
	if n := countKeys(t, h.s, pReply); n != 1 {
		t.Fatalf("%d records left, want only the latest", n)
	}
}

// drcWorkload mixes requests, retransmissions (also within one batch),
// reused xids, failures and expiry.
func drcWorkload() []*Command {
	cmds := []*Command{{Op: OpCreateVolume, VolName: "a", SizeLimit: 1 << 30}}
	for i := range 20 {
		id := reqID(fmt.Sprintf("10.0.0.%d:800", i%3), uint32(i), 8, fmt.Sprint("create ", i))
		c := &Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: fmt.Sprint("f", i), Type: TypeRegular, Mode: 0o644, Req: id}
		cmds = append(cmds, c, c) // the second is a retransmission
	}
	rm := &Command{Op: OpRemove, Vol: 1, Dir: RootIno, Name: "f3", Req: reqID("x", 1, 12, "rm f3")}
	cmds = append(cmds, rm, rm,
		&Command{Op: OpRemove, Vol: 1, Dir: RootIno, Name: "f3", Req: reqID("x", 1, 12, "rm f3 again")},
		&Command{Op: OpSetExport, VolName: "a", Export: &Export{Clients: []string{"10.0.0.0/8"}, Squash: SquashAll},
			Req: reqID("admin", 1, 0, "")},
	)
	for i, c := range cmds {
		c.Time = Time(1000 + i)
	}
	// Much later: everything above expires.
	late := &Command{Op: OpCreate, Time: 1000 + DRCRetention + 100, Vol: 1, Dir: RootIno, Name: "late",
		Type: TypeRegular, Mode: 0o644, Req: reqID("10.0.0.1:800", 0, 8, "create 0")}
	return append(cmds, late, late)
}

func TestDRCReplicasAgree(t *testing.T) {
	s1 := openStore(t, t.TempDir())
	defer s1.Close()
	s2 := openStore(t, t.TempDir())
	defer s2.Close()
	cmds := drcWorkload()
	r1 := s1.ApplyBatch(entriesOf(cmds, 1))
	var r2 []Result
	for _, e := range entriesOf(cmds, 50) {
		r2 = append(r2, s2.ApplyBatch([]Entry{e})...)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("results differ\n%+v\n%+v", r1, r2)
	}
	h1, _ := s1.Hash()
	h2, _ := s2.Hash()
	if h1 != h2 {
		t.Fatal("replicas fed the same commands differ")
	}
	nReplayed := 0
	for _, r := range r1 {
		if r.Replayed {
			nReplayed++
		}
	}
	if want := 20 + 1 + 1; nReplayed != want {
		t.Fatalf("%d replayed results, want %d", nReplayed, want)
	}
	if r := r1[len(r1)-4]; r.Replayed || r.Err != syscall.ENOENT {
		t.Fatalf("remove with new arguments: %+v", r)
	}
	vol, err := s1.VolumeByID(1)
	if err != nil || vol.Inodes != 1+20-1+1 {
		t.Fatalf("volume %+v, %v", vol, err)
	}
	// A store that missed the retransmissions has the same state: replays
	// change nothing.
	var firsts []*Command
	seen := map[*Command]bool{}
	for _, c := range cmds {
		if !seen[c] {
			firsts = append(firsts, c)
		}
		seen[c] = true
	}
	s3 := openStore(t, t.TempDir())
	defer s3.Close()
	s3.ApplyBatch(entriesOf(firsts, 1))
	if h3, _ := s3.Hash(); h3 != h1 {
		t.Fatal("replayed commands changed the state")
	}
}

func TestDRCSurvivesReopenAndRestore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	id := reqID("c", 9, 8, "create f")
	create := &Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644, Req: id}
	res := s.ApplyBatch(entriesOf([]*Command{
		{Op: OpCreateVolume, Time: 1, VolName: "v", SizeLimit: 1 << 30},
		{Op: OpCreate, Time: 2, Vol: 1, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644, Req: id},
	}, 1))
	cp := t.TempDir() + "/cp"
	if err := s.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	got, ok, err := s.LookupReply(*id)
	if err != nil || !ok {
		t.Fatalf("LookupReply after reopen: %v %v", ok, err)
	}
	replayed(t, got, res[1])
	// A new node restored from a snapshot answers the retransmission too.
	other := openStore(t, t.TempDir())
	defer other.Close()
	if err := other.RestoreFrom(cp); err != nil {
		t.Fatal(err)
	}
	create.Time = 3
	replayed(t, other.ApplyBatch(entriesOf([]*Command{create}, 3))[0], res[1])
}

func TestLookupReplyMisses(t *testing.T) {
	h := newHarness(t)
	if _, ok := h.lookupReply(reqID("c", 1, 1, "")); ok {
		t.Fatal("found a reply in an empty store")
	}
	long := reqID(string(make([]byte, MaxRequestClient+1)), 1, 1, "")
	if _, ok := h.lookupReply(long); ok {
		t.Fatal("found a reply for an over-long client")
	}
}
