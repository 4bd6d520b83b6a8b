package fsstate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// randomBytes returns n bytes that do not compress, the same for a seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func snapCreate(vol, name string) *Command {
	return &Command{Op: OpSnapshotCreate, VolName: vol, SnapName: name}
}

func snapDelete(vol, name string) *Command {
	return &Command{Op: OpSnapshotDelete, VolName: vol, SnapName: name}
}

func volClone(vol, snap, to string) *Command {
	return &Command{Op: OpVolumeClone, VolName: vol, SnapName: snap, ToName: to}
}

func volRevert(vol, snap string) *Command {
	return &Command{Op: OpVolumeRevert, VolName: vol, SnapName: snap}
}

func openSnap(t testing.TB, s *Store, vol uint64, name string) *Store {
	t.Helper()
	ss, err := s.OpenSnapshot(vol, name)
	if err != nil {
		t.Fatalf("OpenSnapshot(%d, %q): %v", vol, name, err)
	}
	return ss
}

func storeHash(t testing.TB, s *Store) [32]byte {
	t.Helper()
	h, err := s.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return h
}

// dumpVolume describes a volume's whole tree: every entry's name, inode,
// attributes, and the hash of its data or its target, plus the volume's
// usage. Two volumes with equal dumps hold the same files.
func dumpVolume(t testing.TB, s *Store, vol uint64) string {
	t.Helper()
	var sb strings.Builder
	v, err := s.VolumeByID(vol)
	if err != nil {
		t.Fatalf("VolumeByID(%d): %v", vol, err)
	}
	fmt.Fprintf(&sb, "used=%d inodes=%d\n", v.Used, v.Inodes)
	attr := func(path string, a Attr) {
		fmt.Fprintf(&sb, "%s ino=%d gen=%d type=%d mode=%o nlink=%d uid=%d gid=%d size=%d used=%d a=%d m=%d c=%d parent=%d",
			path, a.Ino, a.Gen, a.Type, a.Mode, a.Nlink, a.UID, a.GID, a.Size, a.Used, a.Atime, a.Mtime, a.Ctime, a.Parent)
	}
	var walk func(dir uint64, path string)
	walk = func(dir uint64, path string) {
		ents, eof, err := s.ReadDir(vol, dir, 0, 0)
		if err != nil || !eof {
			t.Fatalf("ReadDir(%s): %v", path, err)
		}
		for _, e := range ents {
			p := path + "/" + e.Name
			attr(p, e.Attr)
			fmt.Fprintf(&sb, " cookie=%d", e.Cookie)
			switch e.Attr.Type {
			case TypeRegular:
				h := sha256.New()
				for off := uint64(0); off < e.Attr.Size; {
					d, _, err := s.Read(vol, e.Ino, off, MaxRead)
					if err != nil {
						t.Fatalf("Read(%s): %v", p, err)
					}
					h.Write(d)
					off += uint64(len(d))
				}
				fmt.Fprintf(&sb, " data=%x\n", h.Sum(nil)[:8])
			case TypeSymlink:
				target, err := s.Readlink(vol, e.Ino)
				if err != nil {
					t.Fatalf("Readlink(%s): %v", p, err)
				}
				fmt.Fprintf(&sb, " target=%q\n", target)
			case TypeDir:
				sb.WriteString("\n")
				walk(e.Ino, p)
			}
		}
	}
	root, err := s.GetAttr(vol, RootIno)
	if err != nil {
		t.Fatalf("GetAttr(root): %v", err)
	}
	attr("/", root)
	sb.WriteString("\n")
	walk(RootIno, "")
	return sb.String()
}

// populate fills volume vol of h with a small tree and returns it.
func populate(h *harness, vol uint64) {
	h.t.Helper()
	a := h.file(vol, RootIno, "a")
	h.write(vol, a.Ino, 0, pattern(100_000, 1))
	d := h.mkdir(vol, RootIno, "d")
	b := h.file(vol, d.Ino, "b")
	h.write(vol, b.Ino, 5, []byte("hello"))
	h.ok(&Command{Op: OpCreate, Vol: vol, Dir: d.Ino, Name: "ln", Type: TypeSymlink, Target: "../a"})
	h.ok(&Command{Op: OpLink, Vol: vol, Ino: b.Ino, Dir: RootIno, Name: "b2"})
}

func snapInfos(t testing.TB, s *Store, vol uint64) []SnapshotInfo {
	t.Helper()
	infos, err := s.Snapshots(vol)
	if err != nil {
		t.Fatalf("Snapshots(%d): %v", vol, err)
	}
	return infos
}

func TestVolumeSnapshotKeepsOldContent(t *testing.T) {
	h := newHarness(t)
	v := h.volume("data", 1<<30)
	populate(h, v.ID)
	before := dumpVolume(t, h.s, v.ID)
	vb := h.vol(v.ID)

	sc := snapCreate("data", "s1")
	r := h.ok(sc)
	snapIndex := h.idx
	if r.Volume.ID != v.ID {
		t.Fatalf("result volume %+v", r.Volume)
	}
	a := h.lookup(v.ID, RootIno, "a")
	d := h.lookup(v.ID, RootIno, "d")
	h.write(v.ID, a.Ino, 50_000, pattern(200_000, 9))
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "b"})
	c := h.file(v.ID, RootIno, "c")
	h.write(v.ID, c.Ino, 0, []byte("new"))

	ss := openSnap(t, h.s, v.ID, "s1")
	if got := dumpVolume(t, ss, v.ID); got != before {
		t.Fatalf("snapshot content changed:\n got %s\nwant %s", got, before)
	}
	if _, err := ss.Lookup(v.ID, RootIno, "c"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("new file in the snapshot: %v", err)
	}
	if _, err := ss.GetAttr(v.ID, c.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("new inode in the snapshot: %v", err)
	}
	data, _, err := ss.Read(v.ID, a.Ino, 0, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, data, pattern(100_000, 1), "old data of a")
	if sv, err := ss.VolumeByID(v.ID); err != nil || sv.Used != vb.Used || sv.Inodes != vb.Inodes {
		t.Fatalf("snapshot volume %+v %v, want used %d inodes %d", sv, err, vb.Used, vb.Inodes)
	}
	if idx, _, _ := ss.Applied(); idx != snapIndex-1 {
		t.Fatalf("snapshot applied index %d, want %d", idx, snapIndex-1)
	}
	// The live volume has the new content.
	if got := dumpVolume(t, h.s, v.ID); got == before {
		t.Fatal("live volume did not change")
	}
	h.noEntry(v.ID, d.Ino, "b")
	// Opened once.
	if again := openSnap(t, h.s, v.ID, "s1"); again != ss {
		t.Fatal("OpenSnapshot opened the snapshot twice")
	}

	infos := snapInfos(t, h.s, v.ID)
	want := SnapshotInfo{Vol: v.ID, VolName: "data", Name: "s1", Created: sc.Time,
		Index: snapIndex, VolumeUsed: vb.Used, VolumeInodes: vb.Inodes}
	if len(infos) != 1 {
		t.Fatalf("Snapshots: %+v", infos)
	}
	got := infos[0]
	if got.HeldBytes > 256<<10 {
		t.Fatalf("fresh snapshot holds %d bytes", got.HeldBytes)
	}
	want.HeldBytes = got.HeldBytes
	if got != want {
		t.Fatalf("Snapshots:\n got %+v\nwant %+v", got, want)
	}
	if all := snapInfos(t, h.s, 0); !reflect.DeepEqual(all, infos) {
		t.Fatalf("Snapshots(0) = %+v", all)
	}
	if none := snapInfos(t, h.s, v.ID+1); len(none) != 0 {
		t.Fatalf("Snapshots of another volume: %+v", none)
	}

	// The snapshot's store refuses changes.
	res := ss.ApplyBatch([]Entry{{Index: 1000, Term: 1, Data: (&Command{Op: OpNoop}).Encode()}})
	if res[0].Err != syscall.EROFS {
		t.Fatalf("ApplyBatch on a snapshot: %+v", res)
	}
	if _, err := ss.TryApplyBatch(nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("TryApplyBatch on a snapshot: %v", err)
	}
	if err := ss.Checkpoint(filepath.Join(t.TempDir(), "cp")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Checkpoint on a snapshot: %v", err)
	}
	if err := ss.RestoreFrom(t.TempDir()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("RestoreFrom on a snapshot: %v", err)
	}
	if _, err := ss.OpenSnapshot(v.ID, "s1"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("OpenSnapshot on a snapshot: %v", err)
	}
	if err := ss.Close(); err != nil {
		t.Fatalf("Close on a snapshot: %v", err)
	}
	if _, err := ss.GetAttr(v.ID, RootIno); err != nil {
		t.Fatalf("snapshot closed by its own Close: %v", err)
	}

	// Closing the store closes its snapshots.
	h.s.Close()
	if _, err := ss.GetAttr(v.ID, RootIno); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of a snapshot after Close: %v", err)
	}
}

func TestVolumeSnapshotHeldBytes(t *testing.T) {
	h := newHarness(t)
	v := h.volume("data", 1<<40)
	big := h.file(v.ID, RootIno, "big")
	h.ok(&Command{Op: OpSetAttr, Vol: v.ID, Ino: big.Ino, Set: SetAttr{Size: ptr(uint64(1 << 30))}})
	h.write(v.ID, big.Ino, 1<<29, []byte("middle"))
	f := h.file(v.ID, RootIno, "f")
	const n = 4 << 20
	for off := 0; off < n; off += MaxEntryData {
		h.write(v.ID, f.Ino, uint64(off), randomBytes(MaxEntryData, uint64(off)))
	}

	start := time.Now()
	h.ok(snapCreate("data", "s"))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("snapshot of a 1 GiB sparse file took %v", d)
	}
	infos := snapInfos(t, h.s, v.ID)
	if len(infos) != 1 || infos[0].Missing {
		t.Fatalf("Snapshots: %+v", infos)
	}
	fresh := infos[0].HeldBytes
	if fresh > 256<<10 {
		t.Fatalf("fresh snapshot holds %d bytes", fresh)
	}
	ss := openSnap(t, h.s, v.ID, "s")
	if a, err := ss.GetAttr(v.ID, big.Ino); err != nil || a.Size != 1<<30 {
		t.Fatalf("big file in the snapshot: %+v %v", a, err)
	}
	if d, _, err := ss.Read(v.ID, big.Ino, 1<<29-2, 10); err != nil || string(d) != "\x00\x00middle\x00\x00" {
		t.Fatalf("read of the sparse file in the snapshot: %q %v", d, err)
	}

	// Overwrite the data, flush and compact: the live database drops the
	// files the snapshot still holds.
	for off := 0; off < n; off += MaxEntryData {
		h.write(v.ID, f.Ino, uint64(off), randomBytes(MaxEntryData, uint64(off)+1))
	}
	if err := h.s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := h.s.db.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, false); err != nil {
		t.Fatal(err)
	}
	// Pebble deletes the files it no longer needs in the background.
	var held uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if held = snapInfos(t, h.s, v.ID)[0].HeldBytes; held >= n {
			break
		}
	}
	if held < n {
		t.Fatalf("after overwriting %d bytes the snapshot holds %d bytes (fresh: %d)", n, held, fresh)
	}
	d, _, err := ss.Read(v.ID, f.Ino, MaxEntryData, MaxEntryData)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, d, randomBytes(MaxEntryData, MaxEntryData), "snapshot data after compaction")
}

// snapWorkload mixes file operations with snapshot, clone, revert and
// delete commands, several of them in the middle of what a batch may hold.
func snapWorkload() []*Command {
	var cmds []*Command
	add := func(cs ...*Command) { cmds = append(cmds, cs...) }
	add(&Command{Op: OpCreateVolume, VolName: "a", SizeLimit: 1 << 30},
		&Command{Op: OpCreateVolume, VolName: "b", SizeLimit: 1 << 30})
	for i := range 10 {
		add(&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: fmt.Sprintf("f%d", i), Type: TypeRegular, Mode: 0o644},
			&Command{Op: OpWrite, Vol: 1, Ino: uint64(2 + i), Offset: uint64(i * 3000), Data: pattern(70_000, byte(i))})
	}
	add(snapCreate("a", "s1"),
		&Command{Op: OpWrite, Vol: 1, Ino: 2, Data: []byte("changed")},
		&Command{Op: OpRemove, Vol: 1, Dir: RootIno, Name: "f3"},
		snapCreate("a", "s1"), // EEXIST
		&Command{Op: OpCreate, Vol: 2, Dir: RootIno, Name: "x", Type: TypeDir, Mode: 0o755},
		snapCreate("b", "s1"),
		snapCreate("a", "s2"),
		volClone("a", "s1", "c"),
		&Command{Op: OpWrite, Vol: 3, Ino: 2, Data: []byte("clone")},
		&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "late", Type: TypeRegular, Mode: 0o600},
		volRevert("a", "s1"),
		snapDelete("a", "s2"),
		snapCreate("a", "s2"),
		&Command{Op: OpWrite, Vol: 1, Ino: 4, Offset: 1 << 20, Data: []byte("after revert")},
		snapDelete("b", "s1"),
		snapDelete("b", "s1"), // ENOENT
		snapCreate("c", "s1"),
		&Command{Op: OpNoop},
	)
	for i, c := range cmds {
		c.Time = Time(5000 + i)
	}
	return cmds
}

func TestVolumeSnapshotsDeterministic(t *testing.T) {
	cmds := snapWorkload()
	entries := entriesOf(cmds, 1)
	splits := [][]int{
		{len(entries)},  // one batch
		{1},             // one entry at a time
		{3, 7, 1, 5, 2}, // uneven batches, repeated
	}
	type replica struct {
		s       *Store
		results []Result
	}
	var reps []replica
	for _, split := range splits {
		s := openStore(t, t.TempDir())
		defer s.Close()
		var res []Result
		for i, k := 0, 0; i < len(entries); k++ {
			n := min(split[k%len(split)], len(entries)-i)
			res = append(res, s.ApplyBatch(entries[i:i+n])...)
			i += n
		}
		reps = append(reps, replica{s, res})
	}
	r0 := reps[0]
	for i, c := range cmds {
		if c.Op >= OpSnapshotCreate {
			want := map[int]syscall.Errno{25: syscall.EEXIST, 37: syscall.ENOENT}[i]
			if r0.results[i].Err != want {
				t.Fatalf("command %d (op %d): %v, want %v", i, c.Op, r0.results[i].Err, want)
			}
		}
	}
	infos0 := snapInfos(t, r0.s, 0)
	names := []string{}
	for _, in := range infos0 {
		names = append(names, fmt.Sprintf("%d/%s", in.Vol, in.Name))
	}
	if got := strings.Join(names, " "); got != "1/s1 1/s2 3/s1" {
		t.Fatalf("snapshots %s", got)
	}
	for _, r := range reps[1:] {
		if !reflect.DeepEqual(r.results, r0.results) {
			t.Fatalf("results differ:\n%+v\n%+v", r.results, r0.results)
		}
		if storeHash(t, r.s) != storeHash(t, r0.s) {
			t.Fatal("replicas fed the same entries differ")
		}
		infos := snapInfos(t, r.s, 0)
		if len(infos) != len(infos0) {
			t.Fatalf("snapshots %+v vs %+v", infos, infos0)
		}
		for i := range infos {
			a, b := infos[i], infos0[i]
			a.HeldBytes, b.HeldBytes = 0, 0
			if a != b {
				t.Fatalf("snapshot %+v vs %+v", a, b)
			}
			sa := openSnap(t, r.s, a.Vol, a.Name)
			sb := openSnap(t, r0.s, b.Vol, b.Name)
			if storeHash(t, sa) != storeHash(t, sb) {
				t.Fatalf("snapshot %d/%s differs between replicas", a.Vol, a.Name)
			}
		}
	}
	// Revert put back what s1 held; the write after it is the only change.
	s := r0.s
	f0, err := s.Lookup(1, RootIno, "f0")
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _ := s.Read(1, f0.Ino, 0, 7); string(d) == "changed" {
		t.Fatal("revert kept a later write")
	}
	if _, err := s.Lookup(1, RootIno, "f3"); err != nil {
		t.Fatalf("revert did not bring back f3: %v", err)
	}
	if _, err := s.Lookup(1, RootIno, "late"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("revert kept a later file: %v", err)
	}
	// The clone kept its own write; s1 of the clone is the clone after it.
	if d, _, _ := s.Read(3, 2, 0, 5); string(d) != "clone" {
		t.Fatalf("clone data %q", d)
	}
	cs := openSnap(t, s, 3, "s1")
	if d, _, _ := cs.Read(3, 2, 0, 5); string(d) != "clone" {
		t.Fatalf("clone's snapshot data %q", d)
	}
}

func TestVolumeSnapshotReplayAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	cmds := []*Command{
		{Op: OpCreateVolume, VolName: "v", SizeLimit: 1 << 30, Time: 1},
		{Op: OpCreate, Vol: 1, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644, Time: 2},
		{Op: OpWrite, Vol: 1, Ino: 2, Data: []byte("one"), Time: 3},
		{Op: OpSnapshotCreate, VolName: "v", SnapName: "s", Time: 4},
		{Op: OpWrite, Vol: 1, Ino: 2, Data: []byte("two"), Time: 5},
	}
	entries := entriesOf(cmds, 1)
	s.ApplyBatch(entries)
	hash := storeHash(t, s)
	snapHash := storeHash(t, openSnap(t, s, 1, "s"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A directory the state does not record (a crash before the record was
	// flushed) and a temporary one are removed by Open.
	for _, p := range []string{"volsnaps/1/orphan", "volsnaps/1/.tmp-x", "volsnaps/7/s", "volsnaps/junk"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, dir)
	defer s.Close()
	for _, p := range []string{"volsnaps/1/orphan", "volsnaps/1/.tmp-x", "volsnaps/7", "volsnaps/junk"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived Open: %v", p, err)
		}
	}
	res := s.ApplyBatch(entries[2:])
	for i, r := range res {
		if !r.Skipped {
			t.Fatalf("replayed entry %d applied again: %+v", i+3, r)
		}
	}
	if storeHash(t, s) != hash {
		t.Fatal("replay changed the state")
	}
	if storeHash(t, openSnap(t, s, 1, "s")) != snapHash {
		t.Fatal("replay changed the snapshot")
	}
	if d, _, _ := openSnap(t, s, 1, "s").Read(1, 2, 0, 10); string(d) != "one" {
		t.Fatalf("snapshot data %q", d)
	}
}

// A snapshot entry applied again after a crash that lost its record finds
// the directory of the first attempt and replaces it.
func TestVolumeSnapshotReplacesLeftoverDir(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("data"))
	left := h.s.volSnapDir(snapID{v.ID, "s"})
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "000001.sst"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ok(snapCreate("v", "s"))
	if _, err := os.Stat(filepath.Join(left, "000001.sst")); err == nil {
		t.Fatal("leftover file kept")
	}
	if d, _, err := openSnap(t, h.s, v.ID, "s").Read(v.ID, f.Ino, 0, 10); err != nil || string(d) != "data" {
		t.Fatalf("snapshot read %q %v", d, err)
	}
}

func TestVolumeSnapshotMissingDir(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	h.ok(snapCreate("v", "s"))
	h.ok(snapCreate("v", "t"))
	if err := os.RemoveAll(h.s.volSnapDir(snapID{v.ID, "s"})); err != nil {
		t.Fatal(err)
	}
	infos := snapInfos(t, h.s, v.ID)
	if len(infos) != 2 || !infos[0].Missing || infos[1].Missing {
		t.Fatalf("Snapshots: %+v", infos)
	}
	if _, err := h.s.OpenSnapshot(v.ID, "s"); !errors.Is(err, ErrSnapshotMissing) {
		t.Fatalf("OpenSnapshot of a missing snapshot: %v", err)
	}
	if _, err := h.s.OpenSnapshot(v.ID, "nope"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("OpenSnapshot of no snapshot: %v", err)
	}
	// A missing snapshot can still be deleted.
	h.ok(snapDelete("v", "s"))
	if infos := snapInfos(t, h.s, v.ID); len(infos) != 1 || infos[0].Name != "t" {
		t.Fatalf("Snapshots: %+v", infos)
	}
}

func TestVolumeSnapshotDelete(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, []byte("old"))
	h.ok(snapCreate("v", "s"))
	ss := openSnap(t, h.s, v.ID, "s")
	dir := h.s.volSnapDir(snapID{v.ID, "s"})
	h.ok(snapDelete("v", "s"))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot directory survived its deletion: %v", err)
	}
	if _, err := ss.GetAttr(v.ID, RootIno); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of a deleted snapshot: %v", err)
	}
	if infos := snapInfos(t, h.s, 0); len(infos) != 0 {
		t.Fatalf("Snapshots: %+v", infos)
	}

	// In one batch: a new write, then delete and take again under the same
	// name; then take, write and delete another.
	h.applyMany([]*Command{
		snapCreate("v", "s"),
		{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Data: []byte("new")},
		snapDelete("v", "s"),
		snapCreate("v", "s"),
		snapCreate("v", "u"),
		{Op: OpWrite, Vol: v.ID, Ino: f.Ino, Data: []byte("3rd")},
		snapDelete("v", "u"),
	})
	if d, _, err := openSnap(t, h.s, v.ID, "s").Read(v.ID, f.Ino, 0, 3); err != nil || string(d) != "new" {
		t.Fatalf("re-taken snapshot reads %q %v", d, err)
	}
	if _, err := os.Stat(h.s.volSnapDir(snapID{v.ID, "u"})); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted snapshot's directory: %v", err)
	}
}
