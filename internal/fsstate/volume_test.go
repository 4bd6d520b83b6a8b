package fsstate

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestCreateVolume(t *testing.T) {
	h := newHarness(t)
	r := h.ok(&Command{Op: OpCreateVolume, VolName: "data", SizeLimit: 1 << 30, Time: 42})
	v := r.Volume
	if v.ID != 1 || v.Name != "data" || v.SizeLimit != 1<<30 || v.Used != 0 || v.Inodes != 1 || v.Created != 42 {
		t.Fatalf("volume %+v", v)
	}
	root := h.attr(v.ID, RootIno)
	want := Attr{Vol: 1, Ino: RootIno, Gen: 1, Type: TypeDir, Mode: 0o755, Nlink: 2, Size: 4096, Used: 4096,
		Atime: 42, Mtime: 42, Ctime: 42, Parent: RootIno}
	if root != want {
		t.Fatalf("root\n got %+v\nwant %+v", root, want)
	}
	if got := h.lookup(1, RootIno, ".."); got != root {
		t.Fatalf("root's .. is %+v", got)
	}
	v2 := h.volume("other_1.x-y", 10)
	if v2.ID != 2 {
		t.Fatalf("second volume id %d", v2.ID)
	}
	if got, err := h.s.VolumeByName("data"); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("VolumeByName = %+v, %v", got, err)
	}
	if got, err := h.s.VolumeByID(2); err != nil || !reflect.DeepEqual(got, v2) {
		t.Fatalf("VolumeByID = %+v, %v", got, err)
	}
	if _, err := h.s.VolumeByName("nope"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("VolumeByName(nope) = %v", err)
	}
	if _, err := h.s.VolumeByID(3); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("VolumeByID(3) = %v", err)
	}
	vols, err := h.s.Volumes()
	if err != nil || len(vols) != 2 || !reflect.DeepEqual(vols, []Volume{v, v2}) {
		t.Fatalf("Volumes = %+v, %v", vols, err)
	}
}

func TestCreateVolumeErrors(t *testing.T) {
	h := newHarness(t)
	h.volume("taken", 100)
	tests := []struct {
		name  string
		limit uint64
		cred  *Cred
		want  syscall.Errno
	}{
		{"", 1, nil, syscall.EINVAL},
		{".hidden", 1, nil, syscall.EINVAL},
		{"-opt", 1, nil, syscall.EINVAL},
		{"a/b", 1, nil, syscall.EINVAL},
		{"sp ace", 1, nil, syscall.EINVAL},
		{"é", 1, nil, syscall.EINVAL},
		{strings.Repeat("a", 65), 1, nil, syscall.EINVAL},
		{"ok", 0, nil, syscall.EINVAL},
		{"taken", 5, nil, syscall.EEXIST},
		{"ok", 5, &Cred{UID: 1000}, syscall.EPERM},
	}
	for _, tc := range tests {
		h.fail(&Command{Op: OpCreateVolume, VolName: tc.name, SizeLimit: tc.limit, Cred: tc.cred}, tc.want)
	}
	h.volume(strings.Repeat("a", 64), 1)
	// Ids are never reused, even after a failed create.
	if v := h.volume("next", 1); v.ID != 3 {
		t.Fatalf("id %d, want 3", v.ID)
	}
}

func TestResizeVolume(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<20)
	f := h.file(v.ID, RootIno, "f")
	h.write(v.ID, f.Ino, 0, make([]byte, 100_000))
	if got := h.vol(v.ID).Used; got != 100_000 {
		t.Fatalf("used %d", got)
	}
	r := h.ok(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 100_000})
	if r.Volume.SizeLimit != 100_000 || h.vol(v.ID).SizeLimit != 100_000 {
		t.Fatalf("resize result %+v", r.Volume)
	}
	h.fail(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 99_999}, syscall.EINVAL)
	h.fail(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 0}, syscall.EINVAL)
	h.fail(&Command{Op: OpResizeVolume, VolName: "w", SizeLimit: 5}, syscall.ENOENT)
	h.fail(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 1 << 30, Cred: &Cred{UID: 1}}, syscall.EPERM)
	h.ok(&Command{Op: OpResizeVolume, VolName: "v", SizeLimit: 1 << 40})
	if got := h.vol(v.ID).SizeLimit; got != 1<<40 {
		t.Fatalf("limit %d", got)
	}
}

func TestDeleteVolume(t *testing.T) {
	h := newHarness(t)
	keep := h.volume("keep", 1<<30)
	kf := h.file(keep.ID, RootIno, "f")
	h.write(keep.ID, kf.Ino, 0, []byte("kept"))
	h.volume("empty", 1<<30)

	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	f := h.file(v.ID, d.Ino, "f")
	h.write(v.ID, f.Ino, 0, pattern(200_000, 1))

	h.fail(&Command{Op: OpDeleteVolume, VolName: "v"}, syscall.ENOTEMPTY)
	h.fail(&Command{Op: OpDeleteVolume, VolName: "nope"}, syscall.ENOENT)
	h.fail(&Command{Op: OpDeleteVolume, VolName: "v", Force: true, Cred: &Cred{UID: 7}}, syscall.EPERM)
	h.ok(&Command{Op: OpDeleteVolume, VolName: "v", Force: true})

	if _, err := h.s.GetAttr(v.ID, f.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("GetAttr after delete: %v", err)
	}
	if _, err := h.s.VolumeByName("v"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("VolumeByName after delete: %v", err)
	}
	h.fail(&Command{Op: OpCreate, Vol: v.ID, Dir: RootIno, Name: "x", Type: TypeRegular}, syscall.ESTALE)
	// An empty volume is deleted without Force.
	h.ok(&Command{Op: OpDeleteVolume, VolName: "empty"})
	h.volume("empty", 1<<30)
	h.ok(&Command{Op: OpDeleteVolume, VolName: "empty"})
	vols, _ := h.s.Volumes()
	if len(vols) != 1 || vols[0].ID != keep.ID {
		t.Fatalf("volumes left: %+v", vols)
	}
	if data, _ := h.read(keep.ID, kf.Ino, 0, 100); string(data) != "kept" {
		t.Fatalf("other volume's data: %q", data)
	}
	// A recreated volume gets a new id, so old file handles stay stale.
	if nv := h.volume("v", 1); nv.ID != 5 {
		t.Fatalf("recreated volume id %d, want 5", nv.ID)
	}
	if _, err := h.s.GetAttr(v.ID, d.Ino); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("old handle: %v", err)
	}
}

// TestDeleteVolumeRemovesAllKeys checks that no key of a deleted volume is
// left behind, by scanning the whole database.
func TestDeleteVolumeRemovesAllKeys(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	f := h.file(v.ID, d.Ino, "f")
	h.write(v.ID, f.Ino, 1<<20, []byte("x"))
	h.ok(&Command{Op: OpDeleteVolume, VolName: "v", Force: true})
	db, err := h.s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer h.s.mu.RUnlock()
	it, _ := db.NewIter(nil)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] != pMeta {
			t.Errorf("key %q left", k)
		}
	}
}
