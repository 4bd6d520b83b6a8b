package conformance

import (
	"bytes"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestProcedures runs each NFSv3 procedure's success path once, in the
// order a client would, and checks the results RFC 1813 describes.
func TestProcedures(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)

	if err := c.Null(cx); err != nil {
		t.Fatalf("NULL: %v", err)
	}
	ra, st, err := c.Getattr(cx, root)
	must(t, "GETATTR /", st, err)
	if ra.Type != nfsv3.NF3DIR || ra.Fileid != 1 || ra.Mode != 0o755 || ra.Fsid != s.vol.ID {
		t.Fatalf("GETATTR /: %+v", ra)
	}

	mk, st, err := c.Mkdir(cx, root, "d", nfsclient.Set{Mode: new(uint32(0o750))})
	must(t, "MKDIR d", st, err)
	d := nfsclient.Handle(mk.Obj)
	if a, ok := nfsclient.Attr(mk.ObjAttributes); !ok || a.Type != nfsv3.NF3DIR || a.Mode != 0o750 || a.Nlink != 2 {
		t.Fatalf("MKDIR d: attributes %+v", mk.ObjAttributes)
	}
	checkWCC(t, "MKDIR d: dir_wcc", mk.DirWcc)

	cr, st, err := c.Create(cx, d, "f", nfsclient.Unchecked(nfsclient.Set{Mode: new(uint32(0o640))}))
	must(t, "CREATE d/f", st, err)
	f := nfsclient.Handle(cr.Obj)
	if a, ok := nfsclient.Attr(cr.ObjAttributes); !ok || a.Type != nfsv3.NF3REG || a.Mode != 0o640 || a.Size != 0 || a.Nlink != 1 {
		t.Fatalf("CREATE d/f: attributes %+v", cr.ObjAttributes)
	}
	pre, post := checkWCC(t, "CREATE d/f: dir_wcc", cr.DirWcc)
	if post.Size == pre.Size && post.Mtime == pre.Mtime {
		t.Errorf("CREATE d/f: the directory's size and mtime did not change: before %+v after %+v", pre, post)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	w, st, err := c.Write(cx, f, 0, data)
	must(t, "WRITE d/f", st, err)
	if w.Count != uint32(len(data)) || w.Committed != nfsv3.FILE_SYNC || w.Verf != [8]byte{3: writeVerifier} {
		t.Fatalf("WRITE d/f: count %d committed %d verf %x", w.Count, w.Committed, w.Verf)
	}
	pre, post = checkWCC(t, "WRITE d/f: file_wcc", w.FileWcc)
	if pre.Size != 0 || post.Size != uint64(len(data)) {
		t.Fatalf("WRITE d/f: size %d before, %d after; want 0 and %d", pre.Size, post.Size, len(data))
	}

	rd, st, err := c.Read(cx, f, 0, 1<<20)
	must(t, "READ d/f", st, err)
	if !rd.Eof || !bytes.Equal(rd.Data, data) || rd.Count != uint32(len(data)) {
		t.Fatalf("READ d/f: %d bytes, eof %v", len(rd.Data), rd.Eof)
	}
	rd, st, err = c.Read(cx, f, 100, 10)
	must(t, "READ d/f at 100", st, err)
	if rd.Eof || !bytes.Equal(rd.Data, data[100:110]) {
		t.Fatalf("READ d/f 10 bytes at 100: %q eof %v", rd.Data, rd.Eof)
	}
	rd, st, err = c.Read(cx, f, uint64(len(data))+5, 10)
	must(t, "READ d/f past the end", st, err)
	if !rd.Eof || len(rd.Data) != 0 {
		t.Fatalf("READ past the end: %d bytes eof %v", len(rd.Data), rd.Eof)
	}

	lk, st, err := c.Lookup(cx, d, "f")
	must(t, "LOOKUP d/f", st, err)
	if !bytes.Equal(lk.Object.Data, f) {
		t.Fatalf("LOOKUP d/f: handle %x, CREATE gave %x", lk.Object.Data, f)
	}
	for _, name := range []string{".", ".."} {
		lk, st, err := c.Lookup(cx, d, name)
		must(t, "LOOKUP d/"+name, st, err)
		want := map[string][]byte{".": d, "..": root}[name]
		if !bytes.Equal(lk.Object.Data, want) {
			t.Errorf("LOOKUP d/%s: handle %x, want %x", name, lk.Object.Data, want)
		}
	}

	all := uint32(nfsv3.ACCESS3_READ | nfsv3.ACCESS3_LOOKUP | nfsv3.ACCESS3_MODIFY | nfsv3.ACCESS3_EXTEND | nfsv3.ACCESS3_DELETE | nfsv3.ACCESS3_EXECUTE)
	acc, st, err := c.Access(cx, f, all)
	must(t, "ACCESS d/f", st, err)
	if want := uint32(nfsv3.ACCESS3_READ | nfsv3.ACCESS3_MODIFY | nfsv3.ACCESS3_EXTEND); acc != want {
		t.Errorf("ACCESS d/f (root, mode 0640): %#x, want %#x", acc, want)
	}

	mtime := time.Unix(1_600_000_000, 123456789)
	wcc, st, err := c.Setattr(cx, f, nfsclient.Set{Mode: new(uint32(0o600)), Size: new(uint64(10)), Mtime: &mtime}, nil)
	must(t, "SETATTR d/f", st, err)
	checkWCC(t, "SETATTR d/f: obj_wcc", *wcc)
	fa, st, err := c.Getattr(cx, f)
	must(t, "GETATTR d/f", st, err)
	if fa.Mode != 0o600 || fa.Size != 10 || fa.Mtime != nfsclient.Time(mtime) {
		t.Fatalf("after SETATTR mode 0600 size 10 mtime %v: %+v", mtime, fa)
	}
	// The guard: the current ctime passes.
	_, st, err = c.Setattr(cx, f, nfsclient.Set{Mode: new(uint32(0o644))}, &fa.Ctime)
	must(t, "SETATTR d/f with a matching guard", st, err)

	sl, st, err := c.Symlink(cx, d, "l", "f", nfsclient.Set{})
	must(t, "SYMLINK d/l", st, err)
	l := nfsclient.Handle(sl.Obj)
	target, st, err := c.Readlink(cx, l)
	must(t, "READLINK d/l", st, err)
	if target != "f" {
		t.Fatalf("READLINK d/l: %q", target)
	}
	if a, _, _ := c.Getattr(cx, l); a == nil || a.Type != nfsv3.NF3LNK || a.Size != 1 {
		t.Fatalf("GETATTR d/l: %+v", a)
	}

	ln, st, err := c.Link(cx, f, d, "g")
	must(t, "LINK d/g", st, err)
	if a, ok := nfsclient.Attr(ln.FileAttributes); !ok || a.Nlink != 2 {
		t.Fatalf("LINK d/g: file attributes %+v", ln.FileAttributes)
	}
	checkWCC(t, "LINK d/g: linkdir_wcc", ln.LinkdirWcc)

	rn, st, err := c.Rename(cx, d, "g", root, "h")
	must(t, "RENAME d/g h", st, err)
	checkWCC(t, "RENAME: fromdir_wcc", rn.FromdirWcc)
	checkWCC(t, "RENAME: todir_wcc", rn.TodirWcc)
	if lk, st, err := c.Lookup(cx, root, "h"); err != nil || st != nfsv3.NFS3_OK || !bytes.Equal(lk.Object.Data, f) {
		t.Fatalf("LOOKUP h after RENAME: %v %v", st, err)
	}
	if _, st, err := c.Lookup(cx, d, "g"); err != nil || st != nfsv3.NFS3ERR_NOENT {
		t.Fatalf("LOOKUP d/g after RENAME: %s %v", statusName(st), err)
	}

	rdr, st, err := c.Readdir(cx, d, 0, [8]byte{}, 4096)
	must(t, "READDIR d", st, err)
	var names []string
	for e := rdr.Reply.Entries; e != nil; e = e.Nextentry {
		names = append(names, e.Name)
	}
	if !rdr.Reply.Eof || !sameSet(names, []string{".", "..", "f", "l"}) {
		t.Fatalf("READDIR d: %v eof %v", names, rdr.Reply.Eof)
	}
	ents, st, err := c.ReaddirPlus(cx, d, 0)
	must(t, "READDIRPLUS d", st, err)
	want := map[string][]byte{".": d, "..": root, "f": f, "l": l}
	for _, e := range ents {
		if !bytes.Equal(e.Handle, want[e.Name]) || e.Attr == nil || e.Attr.Fileid != e.Fileid {
			t.Errorf("READDIRPLUS d: entry %q handle %x attr %+v; want handle %x", e.Name, e.Handle, e.Attr, want[e.Name])
		}
		delete(want, e.Name)
	}
	if len(want) > 0 {
		t.Errorf("READDIRPLUS d: missing %v", want)
	}

	cm, st, err := c.Commit(cx, f, 0, 0)
	must(t, "COMMIT d/f", st, err)
	if cm.Verf != [8]byte{3: writeVerifier} {
		t.Errorf("COMMIT verifier %x, want the WRITE verifier", cm.Verf)
	}

	rm, st, err := c.Remove(cx, d, "l")
	must(t, "REMOVE d/l", st, err)
	pre, post = checkWCC(t, "REMOVE d/l: dir_wcc", *rm)
	if post.Size == pre.Size && post.Mtime == pre.Mtime {
		t.Errorf("REMOVE d/l: the directory's size and mtime did not change")
	}
	if _, st, err := c.Remove(cx, d, "f"); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("REMOVE d/f: %s %v", statusName(st), err)
	}
	if fa, st, err := c.Getattr(cx, f); err != nil || st != nfsv3.NFS3_OK || fa.Nlink != 1 {
		t.Fatalf("GETATTR of the file still linked as h: %s %v %+v", statusName(st), err, fa)
	}
	wcc, st, err = c.Rmdir(cx, root, "d")
	must(t, "RMDIR d", st, err)
	checkWCC(t, "RMDIR d: dir_wcc", *wcc)
}

// checkWCC fails unless WCC data carries both before and after attributes,
// and returns them (after as a wcc_attr).
func checkWCC(t *testing.T, what string, w nfsv3.WccData) (before, after nfsv3.WccAttr) {
	t.Helper()
	b, ok := nfsclient.Before(w)
	if !ok {
		t.Fatalf("%s: no pre-operation attributes", what)
	}
	a, ok := nfsclient.Attr(w.After)
	if !ok {
		t.Fatalf("%s: no post-operation attributes", what)
	}
	after = nfsv3.WccAttr{Size: a.Size, Mtime: a.Mtime, Ctime: a.Ctime}
	if less(after.Ctime, b.Ctime) {
		t.Fatalf("%s: ctime went back from %+v to %+v", what, b.Ctime, after.Ctime)
	}
	return b, after
}

func less(a, b nfsv3.Nfstime3) bool {
	return a.Seconds < b.Seconds || a.Seconds == b.Seconds && a.Nseconds < b.Nseconds
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	m := map[string]int{}
	for _, g := range got {
		m[g]++
	}
	for _, w := range want {
		if m[w] != 1 {
			return false
		}
	}
	return true
}

// TestFsstatFsinfoPathconf checks the filesystem information procedures.
func TestFsstatFsinfoPathconf(t *testing.T) {
	s := startServer(t, serverOpts{size: 8 << 20})
	c, root := s.rootClient()
	cx := ctx(t)
	f := s.fileAs(root, "f", 0, 0, 0o644, make([]byte, 3<<20))

	fs, st, err := c.Fsstat(cx, root)
	must(t, "FSSTAT", st, err)
	if fs.Tbytes != 8<<20 || fs.Fbytes != 5<<20 || fs.Abytes != 5<<20 {
		t.Errorf("FSSTAT of an 8 MiB volume holding 3 MiB: tbytes %d fbytes %d abytes %d", fs.Tbytes, fs.Fbytes, fs.Abytes)
	}
	if fs.Tfiles == 0 || fs.Ffiles != fs.Tfiles-2 || fs.Afiles != fs.Ffiles {
		t.Errorf("FSSTAT files: total %d free %d avail %d with 2 inodes in use", fs.Tfiles, fs.Ffiles, fs.Afiles)
	}

	fi, st, err := c.Fsinfo(cx, root)
	must(t, "FSINFO", st, err)
	if fi.Rtmax < 64<<10 || fi.Wtmax < 64<<10 || fi.Rtpref > fi.Rtmax || fi.Wtpref > fi.Wtmax || fi.Dtpref == 0 ||
		fi.Maxfilesize < 1<<40 || fi.Properties&nfsv3.FSF3_HOMOGENEOUS == 0 || fi.Properties&nfsv3.FSF3_SYMLINK == 0 ||
		fi.Properties&nfsv3.FSF3_LINK == 0 || fi.Properties&nfsv3.FSF3_CANSETTIME == 0 {
		t.Errorf("FSINFO: %+v", fi)
	}
	// The advertised maximum is usable: one READ of rtmax bytes and one
	// WRITE of wtmax bytes.
	big := bytes.Repeat([]byte{0x5a}, int(fi.Wtmax))
	if _, st, err := c.Write(cx, f, 0, big); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("WRITE of wtmax=%d bytes: %s %v", fi.Wtmax, statusName(st), err)
	}
	if r, st, err := c.Read(cx, f, 0, fi.Rtmax); err != nil || st != nfsv3.NFS3_OK || !bytes.Equal(r.Data[:len(big)], big) {
		t.Fatalf("READ of rtmax=%d bytes: %s %v", fi.Rtmax, statusName(st), err)
	}

	pc, st, err := c.Pathconf(cx, f)
	must(t, "PATHCONF", st, err)
	if pc.NameMax != 255 || !pc.NoTrunc || !pc.ChownRestricted || pc.CaseInsensitive || !pc.CasePreserving || pc.Linkmax < 1 {
		t.Errorf("PATHCONF: %+v", pc)
	}
}

// TestCreateWithAttributes: the attributes a CREATE or MKDIR carries
// besides the mode are set too. Linux's client sends open(O_CREAT|O_TRUNC)
// of an existing file as CREATE UNCHECKED with size 0.
func TestCreateWithAttributes(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	s.fileAs(root, "old", 0, 0, 0o644, []byte("old content"))
	mtime := time.Unix(1_500_000_000, 0)

	cr, st, err := c.Create(cx, root, "old", nfsclient.Unchecked(nfsclient.Set{Size: new(uint64(0))}))
	must(t, "CREATE UNCHECKED old with size 0", st, err)
	if a, ok := nfsclient.Attr(cr.ObjAttributes); !ok || a.Size != 0 {
		t.Errorf("CREATE UNCHECKED with size 0 over an 11-byte file: reply attributes %+v", cr.ObjAttributes)
	}
	if a, st, err := c.Getattr(cx, nfsclient.Handle(cr.Obj)); err != nil || st != nfsv3.NFS3_OK || a.Size != 0 {
		t.Errorf("GETATTR after CREATE UNCHECKED with size 0: %+v %s %v; want size 0", a, statusName(st), err)
	}

	cr, st, err = c.Create(cx, root, "new", nfsclient.Guarded(nfsclient.Set{Mode: new(uint32(0o600)), UID: new(uint32(1234)),
		GID: new(uint32(5678)), Mtime: &mtime}))
	must(t, "CREATE GUARDED new with owner and mtime", st, err)
	a, st, err := c.Getattr(cx, nfsclient.Handle(cr.Obj))
	must(t, "GETATTR new", st, err)
	if a.Mode != 0o600 || a.Uid != 1234 || a.Gid != 5678 || a.Mtime != nfsclient.Time(mtime) {
		t.Errorf("CREATE GUARDED mode 0600 uid 1234 gid 5678 mtime %v: got %+v", mtime, a)
	}
	if got, ok := nfsclient.Attr(cr.ObjAttributes); !ok || got.Uid != 1234 || got.Mtime != nfsclient.Time(mtime) {
		t.Errorf("CREATE GUARDED: reply attributes %+v do not show what was set", cr.ObjAttributes)
	}

	mk, st, err := c.Mkdir(cx, root, "d", nfsclient.Set{Mode: new(uint32(0o700)), UID: new(uint32(1234)), GID: new(uint32(5678))})
	must(t, "MKDIR d with owner", st, err)
	a, st, err = c.Getattr(cx, nfsclient.Handle(mk.Obj))
	must(t, "GETATTR d", st, err)
	if a.Mode != 0o700 || a.Uid != 1234 || a.Gid != 5678 {
		t.Errorf("MKDIR mode 0700 uid 1234 gid 5678: got %+v", a)
	}
}
