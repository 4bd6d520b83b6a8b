package fsstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// Clone, revert and their piecewise copy; the helpers are in volsnap_test.go.

func TestVolumeClone(t *testing.T) {
	h := newHarness(t)
	v := h.volume("src", 1<<30)
	populate(h, v.ID)
	h.ok(&Command{Op: OpSetExport, VolName: "src", Export: &Export{Clients: []string{"10.0.0.0/8"}}})
	before := dumpVolume(t, h.s, v.ID)
	h.ok(snapCreate("src", "s"))
	a := h.lookup(v.ID, RootIno, "a")
	h.write(v.ID, a.Ino, 0, []byte("source changed after the snapshot"))
	srcAfter := dumpVolume(t, h.s, v.ID)

	r := h.ok(volClone("src", "s", "copy"))
	cv := r.Volume
	if cv.ID == v.ID || cv.Name != "copy" || cv.SizeLimit != 1<<30 ||
		!reflect.DeepEqual(cv.Export, DefaultExport()) {
		t.Fatalf("clone volume %+v", cv)
	}
	if got, err := h.s.VolumeByName("copy"); err != nil || !reflect.DeepEqual(got, cv) {
		t.Fatalf("VolumeByName(copy) = %+v, %v; want %+v", got, err, cv)
	}
	if got := dumpVolume(t, h.s, cv.ID); got != before {
		t.Fatalf("clone content:\n got %s\nwant %s", got, before)
	}

	// Writing to the clone leaves the source and the snapshot alone.
	h.write(cv.ID, a.Ino, 0, []byte("clone changed"))
	h.ok(&Command{Op: OpRemove, Vol: cv.ID, Dir: RootIno, Name: "b2"})
	n := h.file(cv.ID, RootIno, "new")
	if n.Ino <= a.Ino {
		t.Fatalf("clone allocated inode %d", n.Ino)
	}
	if got := dumpVolume(t, h.s, v.ID); got != srcAfter {
		t.Fatal("writing to the clone changed the source")
	}
	if got := dumpVolume(t, openSnap(t, h.s, v.ID, "s"), v.ID); got != before {
		t.Fatal("writing to the clone changed the snapshot")
	}

	// SizeLimit given, and 0 meaning the source's current limit.
	h.ok(&Command{Op: OpResizeVolume, VolName: "src", SizeLimit: 1 << 31})
	if r := h.ok(&Command{Op: OpVolumeClone, VolName: "src", SnapName: "s", ToName: "c2", SizeLimit: 1 << 20}); r.Volume.SizeLimit != 1<<20 {
		t.Fatalf("clone limit %d", r.Volume.SizeLimit)
	}
	if r := h.ok(volClone("src", "s", "c3")); r.Volume.SizeLimit != 1<<31 {
		t.Fatalf("clone limit %d", r.Volume.SizeLimit)
	}
	h.fail(&Command{Op: OpVolumeClone, VolName: "src", SnapName: "s", ToName: "c4", SizeLimit: 10}, syscall.EINVAL)
}

func TestVolumeRevert(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	populate(h, v.ID)
	other := h.volume("other", 1<<30)
	h.file(other.ID, RootIno, "o")
	before := dumpVolume(t, h.s, v.ID)
	vb := h.vol(v.ID)
	otherBefore := dumpVolume(t, h.s, other.ID)
	h.ok(snapCreate("v", "s"))

	a := h.lookup(v.ID, RootIno, "a")
	d := h.lookup(v.ID, RootIno, "d")
	h.write(v.ID, a.Ino, 1<<20, pattern(200_000, 5))
	h.ok(&Command{Op: OpRename, Vol: v.ID, Dir: d.Ino, Name: "b", ToDir: RootIno, ToName: "moved"})
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "ln"})
	late := h.file(v.ID, RootIno, "late")
	h.mkdir(v.ID, RootIno, "dir2")
	h.ok(&Command{Op: OpSetExport, VolName: "v", Export: &Export{Clients: []string{"192.168.0.0/16"}}})
	h.ok(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 1 << 32})
	h.file(other.ID, RootIno, "o2") // another volume changes too
	otherAfter := dumpVolume(t, h.s, other.ID)
	if otherAfter == otherBefore {
		t.Fatal("setup")
	}

	r := h.ok(volRevert("v", "s"))
	if got := dumpVolume(t, h.s, v.ID); got != before {
		t.Fatalf("reverted content:\n got %s\nwant %s", got, before)
	}
	va := h.vol(v.ID)
	if va.Used != vb.Used || va.Inodes != vb.Inodes {
		t.Fatalf("reverted used %d inodes %d, want %d %d", va.Used, va.Inodes, vb.Used, vb.Inodes)
	}
	if va.ID != v.ID || va.Name != "v" || va.SizeLimit != 1<<32 ||
		!reflect.DeepEqual(va.Export.Clients, []string{"192.168.0.0/16"}) || !reflect.DeepEqual(r.Volume, va) {
		t.Fatalf("reverted volume %+v (result %+v)", va, r.Volume)
	}
	if got := dumpVolume(t, h.s, other.ID); got != otherAfter {
		t.Fatal("revert touched another volume")
	}
	// Inode numbers and generations handed out since are not reused.
	n := h.file(v.ID, RootIno, "next")
	if n.Ino <= late.Ino+1 || n.Gen <= late.Gen {
		t.Fatalf("new inode %d gen %d after revert; %d gen %d was handed out before", n.Ino, n.Gen, late.Ino, late.Gen)
	}
	if _, err := h.s.GetAttr(v.ID, late.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("inode created after the snapshot: %v", err)
	}
	// The snapshot stays, and can be reverted to again.
	h.ok(volRevert("v", "s"))
	if got := dumpVolume(t, h.s, v.ID); got != before {
		t.Fatal("second revert")
	}
}

// A copy larger than a piece is committed in pieces; one cut short by a
// failure (a crash) is done again from scratch when the entry is applied
// again, and ends as an uninterrupted one does.
func TestVolumeCopyInPieces(t *testing.T) {
	defer func(n int) { copyPieceBytes = n }(copyPieceBytes)
	copyPieceBytes = 200 << 10

	cmds := []*Command{{Op: OpCreateVolume, VolName: "v", SizeLimit: 1 << 30}}
	for i := range 8 {
		cmds = append(cmds,
			&Command{Op: OpCreate, Vol: 1, Dir: RootIno, Name: fmt.Sprintf("f%d", i), Type: TypeRegular, Mode: 0o644},
			&Command{Op: OpWrite, Vol: 1, Ino: uint64(2 + i), Data: pattern(MaxEntryData, byte(i))})
	}
	cmds = append(cmds, snapCreate("v", "s"))
	for i := range 8 {
		cmds = append(cmds, &Command{Op: OpWrite, Vol: 1, Ino: uint64(2 + i), Offset: 1000, Data: pattern(90_000, byte(i+50))})
	}
	cmds = append(cmds, &Command{Op: OpRemove, Vol: 1, Dir: RootIno, Name: "f0"})
	for i, c := range cmds {
		c.Time = Time(100 + i)
	}
	tail := []*Command{volClone("v", "s", "c"), volRevert("v", "s"),
		{Op: OpWrite, Vol: 2, Ino: 3, Data: []byte("x")}}
	for i, c := range tail {
		c.Time = Time(1000 + i)
	}
	entries := entriesOf(append(cmds, tail...), 1)
	head := len(cmds)

	ref := openStore(t, t.TempDir())
	defer ref.Close()
	ref.ApplyBatch(entries)
	want := storeHash(t, ref)

	for _, failAt := range []int{0, 1} { // the clone, the revert
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			s.ApplyBatch(entries[:head])
			if failAt == 1 {
				s.ApplyBatch(entries[head : head+1])
			}
			pieces := 0
			testHookPiece = func() error {
				pieces++
				if pieces == 2 {
					return errors.New("simulated crash")
				}
				return nil
			}
			_, err := s.TryApplyBatch(entries[head+failAt:])
			testHookPiece = nil
			if err == nil || pieces != 2 {
				t.Fatalf("TryApplyBatch with a failing piece: %v after %d pieces", err, pieces)
			}
			// The crash: whatever was committed survives (Close flushes).
			if idx, _, _ := s.Applied(); idx != uint64(head+failAt) {
				t.Fatalf("applied index %d after the failure, want %d", idx, head+failAt)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			defer s.Close()
			s.ApplyBatch(entries)
			if storeHash(t, s) != want {
				t.Fatal("copy applied again after a failure differs from an uninterrupted one")
			}
		})
	}
	// The revert restored the files' content.
	f1, _ := ref.Lookup(1, RootIno, "f1")
	if d, _, _ := ref.Read(1, f1.Ino, 0, MaxEntryData); string(d) != string(pattern(MaxEntryData, 1)) {
		t.Fatal("revert in pieces: wrong content")
	}
	if _, err := ref.Lookup(1, RootIno, "f0"); err != nil {
		t.Fatalf("revert in pieces: %v", err)
	}
}

func TestVolumeSnapshotErrors(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	h.file(v.ID, RootIno, "f")
	h.volume("w", 1<<30)
	h.ok(snapCreate("v", "s"))
	user := &Cred{UID: 1000, GID: 1000}
	long := strings.Repeat("n", MaxVolumeNameLen+1)
	tests := []struct {
		name string
		cmd  *Command
		want syscall.Errno
	}{
		{"create duplicate", snapCreate("v", "s"), syscall.EEXIST},
		{"create on missing volume", snapCreate("nope", "s"), syscall.ENOENT},
		{"create empty name", snapCreate("v", ""), syscall.EINVAL},
		{"create dot name", snapCreate("v", ".s"), syscall.EINVAL},
		{"create dash name", snapCreate("v", "-s"), syscall.EINVAL},
		{"create slash name", snapCreate("v", "a/b"), syscall.EINVAL},
		{"create long name", snapCreate("v", long), syscall.EINVAL},
		{"create unprivileged", &Command{Op: OpSnapshotCreate, VolName: "v", SnapName: "u", Cred: user}, syscall.EPERM},
		{"delete missing", snapDelete("v", "nope"), syscall.ENOENT},
		{"delete other volume's", snapDelete("w", "s"), syscall.ENOENT},
		{"delete on missing volume", snapDelete("nope", "s"), syscall.ENOENT},
		{"delete bad name", snapDelete("v", "a b"), syscall.EINVAL},
		{"delete unprivileged", &Command{Op: OpSnapshotDelete, VolName: "v", SnapName: "s", Cred: user}, syscall.EPERM},
		{"clone missing snapshot", volClone("v", "nope", "c"), syscall.ENOENT},
		{"clone missing volume", volClone("nope", "s", "c"), syscall.ENOENT},
		{"clone to existing", volClone("v", "s", "w"), syscall.EEXIST},
		{"clone to itself", volClone("v", "s", "v"), syscall.EEXIST},
		{"clone to bad name", volClone("v", "s", ".c"), syscall.EINVAL},
		{"clone to empty name", volClone("v", "s", ""), syscall.EINVAL},
		{"clone bad snapshot name", volClone("v", "", "c"), syscall.EINVAL},
		{"clone unprivileged", &Command{Op: OpVolumeClone, VolName: "v", SnapName: "s", ToName: "c", Cred: user}, syscall.EPERM},
		{"revert missing snapshot", volRevert("v", "nope"), syscall.ENOENT},
		{"revert to other volume's", volRevert("w", "s"), syscall.ENOENT},
		{"revert missing volume", volRevert("nope", "s"), syscall.ENOENT},
		{"revert bad name", volRevert("v", long), syscall.EINVAL},
		{"revert unprivileged", &Command{Op: OpVolumeRevert, VolName: "v", SnapName: "s", Cred: user}, syscall.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			h.fail(tc.cmd, tc.want)
		})
	}
	h.t = t
	if infos := snapInfos(t, h.s, 0); len(infos) != 1 {
		t.Fatalf("Snapshots after failures: %+v", infos)
	}
	if _, err := h.s.OpenSnapshot(v.ID, "bad/name"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("OpenSnapshot with a bad name: %v", err)
	}
}

func TestVolumeSnapshotCheckpointRestore(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	populate(h, v.ID)
	h.ok(snapCreate("v", "s1"))
	before := dumpVolume(t, h.s, v.ID)
	a := h.lookup(v.ID, RootIno, "a")
	h.write(v.ID, a.Ino, 0, []byte("after s1"))
	h.ok(snapCreate("v", "s2"))
	s2 := dumpVolume(t, h.s, v.ID)
	h.write(v.ID, a.Ino, 0, []byte("after s2"))
	openSnap(t, h.s, v.ID, "s1") // an open snapshot leaves its LOCK behind

	cp := filepath.Join(t.TempDir(), "cp")
	if err := h.s.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s1", "s2"} {
		if _, err := os.Stat(filepath.Join(cp, "volsnaps", fmt.Sprint(v.ID), name)); err != nil {
			t.Fatalf("checkpoint lacks snapshot %s: %v", name, err)
		}
	}

	// A store with snapshots of its own gets those of the checkpoint instead.
	dir := t.TempDir()
	o := openStore(t, dir)
	defer o.Close()
	o.ApplyBatch(entriesOf([]*Command{
		{Op: OpCreateVolume, VolName: "x", SizeLimit: 1 << 20, Time: 1},
		snapCreate("x", "mine"),
	}, 1))
	stale := openSnap(t, o, 1, "mine")
	if err := o.RestoreFrom(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.GetAttr(1, RootIno); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of a replaced snapshot: %v", err)
	}
	if storeHash(t, o) != storeHash(t, h.s) {
		t.Fatal("restored state differs")
	}
	infos := snapInfos(t, o, 0)
	if len(infos) != 2 || infos[0].Name != "s1" || infos[1].Name != "s2" || infos[0].Missing || infos[1].Missing {
		t.Fatalf("restored snapshots: %+v", infos)
	}
	if got := dumpVolume(t, openSnap(t, o, v.ID, "s1"), v.ID); got != before {
		t.Fatal("restored snapshot s1 differs")
	}
	if got := dumpVolume(t, openSnap(t, o, v.ID, "s2"), v.ID); got != s2 {
		t.Fatal("restored snapshot s2 differs")
	}
	if _, err := os.Stat(filepath.Join(dir, "volsnaps", "1", "mine")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old snapshot survived the restore: %v", err)
	}
	// And it reopens with them.
	o.Close()
	o = openStore(t, dir)
	defer o.Close()
	if got := dumpVolume(t, openSnap(t, o, v.ID, "s1"), v.ID); got != before {
		t.Fatal("restored snapshot s1 differs after reopen")
	}
	// Restored snapshots can be cloned from.
	o.ApplyBatch(entriesOf([]*Command{volClone("v", "s1", "c")}, 1000))
	cv, err := o.VolumeByName("c")
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpVolume(t, o, cv.ID); got != before {
		t.Fatal("clone of a restored snapshot differs")
	}

	// A checkpoint without volume snapshots (a stream that did not carry
	// them) leaves them recorded but missing.
	if err := os.RemoveAll(filepath.Join(cp, "volsnaps")); err != nil {
		t.Fatal(err)
	}
	if err := o.RestoreFrom(cp); err != nil {
		t.Fatal(err)
	}
	infos = snapInfos(t, o, 0)
	if len(infos) != 2 || !infos[0].Missing || !infos[1].Missing {
		t.Fatalf("snapshots restored without their directories: %+v", infos)
	}
}

// Open finishes moving the snapshots of a restore that a crash interrupted
// after the state was swapped in.
func TestOpenCompletesVolumeSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	populate(h, v.ID)
	h.ok(snapCreate("v", "s"))
	want := dumpVolume(t, h.s, v.ID)
	cp := filepath.Join(t.TempDir(), "cp")
	if err := h.s.Checkpoint(cp); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := cloneDir(cp, filepath.Join(dir, stateDir)); err != nil {
		t.Fatal(err)
	}
	if err := stageVolSnaps(filepath.Join(cp, volSnapsDir), filepath.Join(dir, stateDir, volSnapsRestored)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, volSnapsDir, "1", "old"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	defer s.Close()
	if got := dumpVolume(t, openSnap(t, s, v.ID, "s"), v.ID); got != want {
		t.Fatal("snapshot after an interrupted restore differs")
	}
	for _, p := range []string{filepath.Join(volSnapsDir, "1", "old"), filepath.Join(stateDir, volSnapsRestored), volSnapsOldDir} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after Open: %v", p, err)
		}
	}
}

func TestDeleteVolumeRemovesSnapshots(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	w := h.volume("w", 1<<30)
	h.file(v.ID, RootIno, "f")
	h.ok(snapCreate("v", "s1"))
	h.ok(snapCreate("v", "s2"))
	h.ok(snapCreate("w", "s1"))
	ss := openSnap(t, h.s, v.ID, "s1")
	h.fail(&Command{Op: OpDeleteVolume, VolName: "v"}, syscall.ENOTEMPTY)
	h.ok(&Command{Op: OpDeleteVolume, VolName: "v", Force: true})
	infos := snapInfos(t, h.s, 0)
	if len(infos) != 1 || infos[0].Vol != w.ID {
		t.Fatalf("Snapshots after deleting the volume: %+v", infos)
	}
	if _, err := os.Stat(h.s.volSnapDir(snapID{vol: v.ID})); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot directories of a deleted volume: %v", err)
	}
	if _, err := ss.GetAttr(v.ID, RootIno); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of a deleted volume's snapshot: %v", err)
	}
	if _, err := h.s.OpenSnapshot(v.ID, "s2"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("OpenSnapshot of a deleted volume's snapshot: %v", err)
	}
	if _, err := h.s.OpenSnapshot(w.ID, "s1"); err != nil {
		t.Fatalf("other volume's snapshot: %v", err)
	}
}
