package fsstate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// workload returns a deterministic mix of commands touching every op.
func workload() []*Command {
	cmds := []*Command{
		{Op: OpCreateVolume, VolName: "a", SizeLimit: 1 << 30},
		{Op: OpCreateVolume, VolName: "b", SizeLimit: 1 << 20},
	}
	for i := range 30 {
		name := fmt.Sprintf("f%d", i)
		cmds = append(cmds,
			&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: name, Type: TypeRegular, Mode: 0o644},
			&Command{Op: OpWrite, Vol: 1, Ino: uint64(2 + i), Offset: uint64(i * 5000), Data: pattern(3000+i*100, byte(i))},
		)
	}
	cmds = append(cmds,
		&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "d", Type: TypeDir, Mode: 0o755},
		&Command{Op: OpRename, Vol: 1, Dir: RootIno, Name: "f1", ToDir: 32, ToName: "g"},
		&Command{Op: OpRemove, Vol: 1, Dir: RootIno, Name: "f2"},
		&Command{Op: OpLink, Vol: 1, Ino: 5, Dir: 32, Name: "l"},
		&Command{Op: OpSetAttr, Vol: 1, Ino: 6, Set: SetAttr{Size: ptr(uint64(10))}},
		&Command{Op: OpCreate, Vol: 2, Dir: RootIno, Name: "s", Type: TypeSymlink, Target: "x"},
		&Command{Op: OpWrite, Vol: 2, Ino: 9, Data: []byte("fails: no such inode")},
		&Command{Op: OpResizeVolume, VolName: "b", SizeLimit: 1 << 21},
	)
	for i, c := range cmds {
		c.Time = Time(1000 + i)
	}
	return cmds
}

func entriesOf(cmds []*Command, firstIndex uint64) []Entry {
	out := make([]Entry, len(cmds))
	for i, c := range cmds {
		out[i] = Entry{Index: firstIndex + uint64(i), Term: 3, Data: c.Encode()}
	}
	return out
}

func TestDeterministicReplicas(t *testing.T) {
	cmds := workload()
	s1 := openStore(t, t.TempDir())
	defer s1.Close()
	s2 := openStore(t, t.TempDir())
	defer s2.Close()
	// One store gets everything in one batch, the other one entry at a time
	// and at different raft indexes.
	r1 := s1.ApplyBatch(entriesOf(cmds, 1))
	var r2 []Result
	for _, e := range entriesOf(cmds, 100) {
		r2 = append(r2, s2.ApplyBatch([]Entry{e})...)
	}
	for i := range r1 {
		if !reflect.DeepEqual(r1[i], r2[i]) {
			t.Fatalf("result %d differs: %+v vs %+v", i, r1[i], r2[i])
		}
	}
	if r1[len(r1)-2].Err != syscall.ESTALE {
		t.Fatalf("failing command: %v", r1[len(r1)-2].Err)
	}
	h1, _ := s1.Hash()
	h2, _ := s2.Hash()
	if h1 != h2 {
		t.Fatal("replicas fed the same commands differ")
	}
	var total uint64
	for _, e := range entriesOf(cmds, 1) {
		total += uint64(len(e.Data))
	}
	if idx, term, b := s1.Applied(); idx != uint64(len(cmds)) || term != 3 || b != total {
		t.Fatalf("Applied = %d %d %d, want %d 3 %d", idx, term, b, len(cmds), total)
	}
	if _, _, b := s2.Applied(); b != total {
		t.Fatalf("s2 applied bytes %d", b)
	}
	// A store that also ran a different command differs.
	s3 := openStore(t, t.TempDir())
	defer s3.Close()
	s3.ApplyBatch(entriesOf(cmds[:len(cmds)-1], 1))
	if h3, _ := s3.Hash(); h3 == h1 {
		t.Fatal("hash does not see a resize")
	}
}

func TestAppliedIndexSkip(t *testing.T) {
	h := newHarness(t)
	h.volume("v", 1<<30)
	f := h.file(1, RootIno, "f")
	idx, term, b := h.s.Applied()
	before := h.hash()
	// Re-applying old entries (as raft does after a crash) changes nothing.
	old := []Entry{
		{Index: idx - 1, Term: 1, Data: (&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "again", Type: TypeRegular}).Encode()},
		{Index: idx, Term: 1, Data: (&Command{Op: OpWrite, Vol: 1, Ino: f.Ino, Data: []byte("x")}).Encode()},
	}
	res := h.s.ApplyBatch(old)
	for i, r := range res {
		if !r.Skipped || r.Err != 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if h.hash() != before {
		t.Fatal("skipped entries changed the state")
	}
	if i2, t2, b2 := h.s.Applied(); i2 != idx || t2 != term || b2 != b {
		t.Fatalf("applied moved: %d %d %d", i2, t2, b2)
	}
	// A batch straddling the applied index applies only the new part.
	mixed := append(old, Entry{Index: idx + 1, Term: 2, Data: (&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "new", Type: TypeRegular}).Encode()})
	res = h.s.ApplyBatch(mixed)
	if !res[0].Skipped || !res[1].Skipped || res[2].Skipped || res[2].Err != 0 {
		t.Fatalf("results %+v", res)
	}
	h.noEntry(1, RootIno, "again")
	h.lookup(1, RootIno, "new")
	if i2, t2, _ := h.s.Applied(); i2 != idx+1 || t2 != 2 {
		t.Fatalf("applied %d %d", i2, t2)
	}
}

func TestBatchSeesEarlierCommands(t *testing.T) {
	h := newHarness(t)
	res := h.applyMany([]*Command{
		{Op: OpCreateVolume, VolName: "v", SizeLimit: 100},
		{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "d", Type: TypeDir},
		{Op: OpCreate, Vol: 1, Dir: 2, Name: "f", Type: TypeRegular},
		{Op: OpWrite, Vol: 1, Ino: 3, Data: pattern(60, 1)},
		{Op: OpWrite, Vol: 1, Ino: 3, Offset: 60, Data: pattern(60, 2)}, // ENOSPC: 120 > 100
		{Op: OpWrite, Vol: 1, Ino: 3, Offset: 60, Data: pattern(40, 3)},
		{Op: OpCreate, Vol: 1, Dir: 2, Name: "f", Type: TypeRegular, CMode: CreateGuarded}, // EEXIST
		{Op: OpRename, Vol: 1, Dir: 2, Name: "f", ToDir: RootIno, ToName: "g"},
		{Op: OpRmdir, Vol: 1, Dir: RootIno, Name: "d"},
	})
	want := []syscall.Errno{0, 0, 0, 0, syscall.ENOSPC, 0, syscall.EEXIST, 0, 0}
	for i, r := range res {
		if r.Err != want[i] {
			t.Fatalf("command %d: %v, want %v", i, r.Err, want[i])
		}
	}
	g := h.lookup(1, RootIno, "g")
	data, _ := h.read(1, g.Ino, 0, 200)
	mustEqualBytes(t, data, append(pattern(60, 1), pattern(40, 3)...), "data")
	if v := h.vol(1); v.Used != 100 || v.Inodes != 2 {
		t.Fatalf("volume %+v", v)
	}
}

func TestUndecodableEntry(t *testing.T) {
	h := newHarness(t)
	h.volume("v", 1<<30)
	before := h.hash()
	idx, _, b := h.s.Applied()
	res := h.s.ApplyBatch([]Entry{{Index: idx + 1, Term: 1, Data: []byte{0xff, 1, 2}}, {Index: idx + 2, Term: 1}})
	if res[0].Err != syscall.EINVAL || res[1].Err != syscall.EINVAL {
		t.Fatalf("results %+v", res)
	}
	if h.hash() != before {
		t.Fatal("garbage changed the state")
	}
	if i2, _, b2 := h.s.Applied(); i2 != idx+2 || b2 != b+3 {
		t.Fatalf("applied %d bytes %d", i2, b2)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.ApplyBatch(entriesOf(workload(), 1))
	want, _ := s.Hash()
	i0, t0, b0 := s.Applied()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAttr(1, RootIno); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetAttr after Close: %v", err)
	}
	if _, err := s.TryApplyBatch(entriesOf(workload(), 100)); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after Close: %v", err)
	}
	s = openStore(t, dir)
	defer s.Close()
	if got, _ := s.Hash(); got != want {
		t.Fatal("state changed across Close/Open")
	}
	if i, tm, b := s.Applied(); i != i0 || tm != t0 || b != b0 {
		t.Fatalf("applied %d %d %d, want %d %d %d", i, tm, b, i0, t0, b0)
	}
	if data, _, err := s.Read(1, 3, 0, 10); err != nil || len(data) != 10 {
		t.Fatalf("read after reopen: %d bytes, %v", len(data), err)
	}
}

func TestOpenRejectsUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	s.Close()
	db, err := pebble.Open(filepath.Join(dir, stateDir), &pebble.Options{FormatMajorVersion: pebble.FormatValueSeparation})
	if err != nil {
		t.Fatal(err)
	}
	db.Set(keyFormat, []byte{99}, pebble.Sync)
	db.Close()
	if _, err := Open(dir, quietLogger()); !errors.Is(err, ErrFormat) {
		t.Fatalf("Open = %v, want ErrFormat", err)
	}

	// A Pebble database that is not ours.
	other := t.TempDir()
	db, err = pebble.Open(filepath.Join(other, stateDir), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Set([]byte("hello"), []byte("world"), pebble.Sync)
	db.Close()
	if _, err := Open(other, quietLogger()); !errors.Is(err, ErrFormat) {
		t.Fatalf("Open(foreign) = %v, want ErrFormat", err)
	}
}

func TestCheckpointRestore(t *testing.T) {
	h := newHarness(t)
	h.s.ApplyBatch(entriesOf(workload(), 1))
	h.idx = uint64(len(workload()))
	snapHash := h.hash()
	snapIdx, _, snapBytes := h.s.Applied()
	ck := filepath.Join(t.TempDir(), "ck")
	if err := h.s.Checkpoint(ck); err != nil {
		t.Fatal(err)
	}
	// Change the state after the checkpoint, then go back.
	h.file(1, RootIno, "later")
	h.write(1, 3, 0, pattern(100_000, 9))
	if h.hash() == snapHash {
		t.Fatal("state did not change")
	}
	if err := h.s.RestoreFrom(ck); err != nil {
		t.Fatal(err)
	}
	if h.hash() != snapHash {
		t.Fatal("restored state differs from the checkpoint")
	}
	if idx, _, b := h.s.Applied(); idx != snapIdx || b != snapBytes {
		t.Fatalf("applied after restore %d/%d, want %d/%d", idx, b, snapIdx, snapBytes)
	}
	h.noEntry(1, RootIno, "later")
	// The store keeps working, the checkpoint stays intact, and a second
	// store restored from it (another node) has the same state.
	h.idx = snapIdx
	h.file(1, RootIno, "after-restore")
	other := openStore(t, t.TempDir())
	defer other.Close()
	if err := other.RestoreFrom(ck); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Hash(); got != snapHash {
		t.Fatal("checkpoint changed after the first restore")
	}
	// Checkpoint into an existing empty directory works too.
	empty := t.TempDir()
	if err := h.s.Checkpoint(empty); err != nil {
		t.Fatalf("checkpoint into empty dir: %v", err)
	}
	if err := h.s.RestoreFrom(t.TempDir()); err == nil {
		t.Fatal("restore from an empty directory succeeded")
	}
	h.lookup(1, RootIno, "after-restore") // still usable after a refused restore
	if _, err := os.Stat(filepath.Join(h.s.Dir(), stateNewDir)); !os.IsNotExist(err) {
		t.Fatalf("state.new left behind: %v", err)
	}
}

func TestOpenCompletesInterruptedRestore(t *testing.T) {
	src := openStore(t, t.TempDir())
	src.ApplyBatch(entriesOf(workload(), 1))
	want, _ := src.Hash()
	ck := filepath.Join(t.TempDir(), "ck")
	if err := src.Checkpoint(ck); err != nil {
		t.Fatal(err)
	}
	src.Close()

	// Crash after state → state.old, before state.new → state.
	dir := t.TempDir()
	s := openStore(t, dir)
	s.Close()
	if err := cloneDir(ck, filepath.Join(dir, stateNewDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, stateDir), filepath.Join(dir, stateOldDir)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if got, _ := s.Hash(); got != want {
		t.Fatal("interrupted restore not completed")
	}
	s.Close()
	for _, p := range []string{stateNewDir, stateOldDir} {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Fatalf("%s left behind", p)
		}
	}

	// Crash while state.new was being filled: the old state stays.
	if err := os.Mkdir(filepath.Join(dir, stateNewDir), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, stateNewDir, "partial"), []byte("x"), 0o600)
	s = openStore(t, dir)
	defer s.Close()
	if got, _ := s.Hash(); got != want {
		t.Fatal("partial state.new was used")
	}
}

// TestReadsDuringRestore runs readers against a store being restored over
// and over; they must never crash and only see the two valid states.
func TestReadsDuringRestore(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("one"))
	ck1 := filepath.Join(t.TempDir(), "ck1")
	if err := h.s.Checkpoint(ck1); err != nil {
		t.Fatal(err)
	}
	h.write(v.ID, f.Ino, 0, []byte("two"))
	ck2 := filepath.Join(t.TempDir(), "ck2")
	if err := h.s.Checkpoint(ck2); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, _, err := h.s.Read(v.ID, f.Ino, 0, 3)
				if err != nil || (string(data) != "one" && string(data) != "two") {
					errs <- fmt.Errorf("read %q, %v", data, err)
					return
				}
			}
		}()
	}
	for i := range 6 {
		ck := ck1
		if i%2 == 1 {
			ck = ck2
		}
		if err := h.s.RestoreFrom(ck); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if data, _ := h.read(v.ID, f.Ino, 0, 3); string(data) != "two" {
		t.Fatalf("final %q", data)
	}
}

// TestReadsSeeWholeBatches reads a file while batches rewrite it; every
// batch writes one byte value over the whole file in several entries, so a
// reader must never see two values at once.
func TestReadsSeeWholeBatches(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	const size = 4 * ChunkSize
	fill := func(b byte) []*Command {
		var cmds []*Command
		for off := 0; off < size; off += ChunkSize {
			cmds = append(cmds, &Command{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Offset: uint64(off), Data: bytes.Repeat([]byte{b}, ChunkSize)})
		}
		return cmds
	}
	h.applyMany(fill(0))
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= 60; i++ {
			for _, r := range h.applyMany(fill(byte(i))) {
				if r.Err != 0 {
					done <- r.Err
					return
				}
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if data, _ := h.read(v.ID, f.Ino, 0, size); data[0] != 60 {
				t.Fatalf("final value %d", data[0])
			}
			return
		default:
		}
		data, _, err := h.s.Read(v.ID, f.Ino, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != size || bytes.Count(data, data[:1]) != size {
			t.Fatalf("read %d: torn batch (first %d, last %d)", reads, data[0], data[len(data)-1])
		}
	}
}
