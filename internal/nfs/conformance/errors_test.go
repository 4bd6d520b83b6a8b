package conformance

import (
	"bytes"
	"strings"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/nfsclient"
)

// TestErrorCodes checks the main error status of each procedure as RFC 1813
// specifies it (and, where the RFC leaves a choice, as Linux's server
// answers).
func TestErrorCodes(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)

	mk, st, err := c.Mkdir(cx, root, "dir", nfsclient.Set{})
	must(t, "MKDIR dir", st, err)
	dir := nfsclient.Handle(mk.Obj)
	sub := s.mkdirIn(c, dir, "sub")
	file := s.fileAs(dir, "file", 0, 0, 0o644, []byte("0123456789"))
	f := s.fileAs(root, "f", 0, 0, 0o644, nil)
	sl, st, err := c.Symlink(cx, root, "sl", "f", nfsclient.Set{})
	must(t, "SYMLINK sl", st, err)
	link := nfsclient.Handle(sl.Obj)
	empty := s.mkdirIn(c, root, "empty")
	s.mkdirIn(c, root, "nonempty2")
	s.fileAs(s.lookup(c, root, "nonempty2"), "x", 0, 0, 0o644, nil)

	// A removed file and a removed directory: their handles are stale.
	gone := s.fileAs(root, "gone", 0, 0, 0o644, []byte("x"))
	goneDir := s.mkdirIn(c, root, "gonedir")
	for _, name := range []string{"gone"} {
		_, st, err := c.Remove(cx, root, name)
		must(t, "REMOVE "+name, st, err)
	}
	_, st, err = c.Rmdir(cx, root, "gonedir")
	must(t, "RMDIR gonedir", st, err)

	// A second volume (XDEV) and a deleted one (STALE).
	if _, err := s.fs.CreateVolume(cx, "other", 1<<20); err != nil {
		t.Fatal(err)
	}
	s.setExport("other", noRootSquash())
	other, mst, err := c.Mount(cx, "/other")
	if err != nil || mst != mount.MNT3_OK {
		t.Fatalf("MNT /other: %d %v", mst, err)
	}
	if _, err := s.fs.CreateVolume(cx, "deleted", 1<<20); err != nil {
		t.Fatal(err)
	}
	s.setExport("deleted", noRootSquash())
	deleted, mst, err := c.Mount(cx, "/deleted")
	if err != nil || mst != mount.MNT3_OK {
		t.Fatalf("MNT /deleted: %d %v", mst, err)
	}
	if err := s.fs.DeleteVolume(cx, "deleted", true); err != nil {
		t.Fatal(err)
	}

	long := strings.Repeat("n", 256)
	forged := bytes.Clone(file)
	forged[len(forged)-1] ^= 1
	otherIno := bytes.Clone(file)
	otherIno[16]++ // another inode number under the old MAC
	foreign := fh.NewCodec([]byte("another cluster")).Encode(fh.Handle{Vol: s.vol.ID, Ino: 1, Gen: 1})
	fa, st, err := c.Getattr(cx, file)
	must(t, "GETATTR dir/file", st, err)
	stale := fa.Ctime
	stale.Nseconds ^= 1

	type op func() (nfsv3.Nfsstat3, error)
	status := func(_ any, st nfsv3.Nfsstat3, err error) (nfsv3.Nfsstat3, error) { return st, err }
	cases := []struct {
		name string
		run  op
		want nfsv3.Nfsstat3
	}{
		{"LOOKUP of a missing name", func() (nfsv3.Nfsstat3, error) { return status(c.Lookup(cx, root, "missing")) }, nfsv3.NFS3ERR_NOENT},
		{"LOOKUP in a file", func() (nfsv3.Nfsstat3, error) { return status(c.Lookup(cx, f, "x")) }, nfsv3.NFS3ERR_NOTDIR},
		{"LOOKUP of a 256-byte name", func() (nfsv3.Nfsstat3, error) { return status(c.Lookup(cx, root, long)) }, nfsv3.NFS3ERR_NAMETOOLONG},
		{"GETATTR of a removed file", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, gone)) }, nfsv3.NFS3ERR_STALE},
		{"LOOKUP in a removed directory", func() (nfsv3.Nfsstat3, error) { return status(c.Lookup(cx, goneDir, "x")) }, nfsv3.NFS3ERR_STALE},
		{"WRITE to a removed file", func() (nfsv3.Nfsstat3, error) { return status(c.Write(cx, gone, 0, []byte("x"))) }, nfsv3.NFS3ERR_STALE},
		{"GETATTR of a deleted volume's root", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, deleted)) }, nfsv3.NFS3ERR_STALE},
		{"LINK into a removed directory", func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, file, goneDir, "x")) }, nfsv3.NFS3ERR_STALE},
		{"RENAME into a removed directory", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", goneDir, "x")) }, nfsv3.NFS3ERR_STALE},
		{"LINK into an altered directory handle", func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, file, forged, "x")) }, nfsv3.NFS3ERR_BADHANDLE},
		{"RENAME into an altered directory handle", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", forged, "x")) }, nfsv3.NFS3ERR_BADHANDLE},
		{"GETATTR of an altered handle", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, forged)) }, nfsv3.NFS3ERR_BADHANDLE},
		{"GETATTR of a handle with a changed inode", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, otherIno)) }, nfsv3.NFS3ERR_BADHANDLE},
		{"GETATTR of another cluster's handle", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, foreign)) }, nfsv3.NFS3ERR_BADHANDLE},
		{"GETATTR of a short handle", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, file[:20])) }, nfsv3.NFS3ERR_BADHANDLE},
		{"GETATTR of an empty handle", func() (nfsv3.Nfsstat3, error) { return status(c.Getattr(cx, nil)) }, nfsv3.NFS3ERR_BADHANDLE},
		{"CREATE GUARDED of an existing name", func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, dir, "file", nfsclient.Guarded(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_EXIST},
		{"CREATE EXCLUSIVE of a file made without a verifier", func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, dir, "file", nfsclient.Exclusive([8]byte{1})))
		}, nfsv3.NFS3ERR_EXIST},
		{"CREATE UNCHECKED over a directory", func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, root, "dir", nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_EXIST},
		{"MKDIR of an existing name", func() (nfsv3.Nfsstat3, error) { return status(c.Mkdir(cx, root, "dir", nfsclient.Set{})) }, nfsv3.NFS3ERR_EXIST},
		{"MKDIR .", func() (nfsv3.Nfsstat3, error) { return status(c.Mkdir(cx, root, ".", nfsclient.Set{})) }, nfsv3.NFS3ERR_EXIST},
		{"SYMLINK over an existing name", func() (nfsv3.Nfsstat3, error) { return status(c.Symlink(cx, root, "f", "x", nfsclient.Set{})) }, nfsv3.NFS3ERR_EXIST},
		{"LINK over an existing name", func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, file, root, "f")) }, nfsv3.NFS3ERR_EXIST},
		{"CREATE in a file", func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, f, "x", nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_NOTDIR},
		{"MKDIR in a file", func() (nfsv3.Nfsstat3, error) { return status(c.Mkdir(cx, f, "x", nfsclient.Set{})) }, nfsv3.NFS3ERR_NOTDIR},
		{"CREATE of a 256-byte name", func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, root, long, nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_NAMETOOLONG},
		{"MKDIR of a 256-byte name", func() (nfsv3.Nfsstat3, error) { return status(c.Mkdir(cx, root, long, nfsclient.Set{})) }, nfsv3.NFS3ERR_NAMETOOLONG},
		{"RENAME to a 256-byte name", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", root, long)) }, nfsv3.NFS3ERR_NAMETOOLONG},
		{"READ of a directory", func() (nfsv3.Nfsstat3, error) { return status(c.Read(cx, dir, 0, 10)) }, nfsv3.NFS3ERR_ISDIR},
		{"WRITE to a directory", func() (nfsv3.Nfsstat3, error) { return status(c.Write(cx, dir, 0, []byte("x"))) }, nfsv3.NFS3ERR_ISDIR},
		{"REMOVE of a directory", func() (nfsv3.Nfsstat3, error) { return status(c.Remove(cx, root, "empty")) }, nfsv3.NFS3ERR_ISDIR},
		{"REMOVE of a missing name", func() (nfsv3.Nfsstat3, error) { return status(c.Remove(cx, root, "missing")) }, nfsv3.NFS3ERR_NOENT},
		{"RMDIR of a file", func() (nfsv3.Nfsstat3, error) { return status(c.Rmdir(cx, root, "f")) }, nfsv3.NFS3ERR_NOTDIR},
		{"RMDIR of a non-empty directory", func() (nfsv3.Nfsstat3, error) { return status(c.Rmdir(cx, root, "dir")) }, nfsv3.NFS3ERR_NOTEMPTY},
		{"RMDIR of .", func() (nfsv3.Nfsstat3, error) { return status(c.Rmdir(cx, empty, ".")) }, nfsv3.NFS3ERR_INVAL},
		{"RMDIR of a missing name", func() (nfsv3.Nfsstat3, error) { return status(c.Rmdir(cx, root, "missing")) }, nfsv3.NFS3ERR_NOENT},
		{"WRITE with count beyond the data", func() (nfsv3.Nfsstat3, error) {
			var res nfsv3.Write3res
			err := c.Call(cx, nfsclient.NFSProgram, 3, nfsclient.ProcWrite, &nfsv3.Write3args{File: nfsv3.NfsFh3{Data: file},
				Count: 100, Stable: nfsv3.FILE_SYNC, Data: []byte("only ten b")}, nfsclient.Into(&res, nfsv3.ReadWrite3res))
			if err != nil {
				return 0, err
			}
			return res.GetStatus(), nil
		}, nfsv3.NFS3ERR_INVAL},
		{"WRITE past the largest file size", func() (nfsv3.Nfsstat3, error) { return status(c.Write(cx, file, fsstate.MaxFileSize, []byte("x"))) }, nfsv3.NFS3ERR_FBIG},
		{"READLINK of a regular file", func() (nfsv3.Nfsstat3, error) { return status(c.Readlink(cx, file)) }, nfsv3.NFS3ERR_INVAL},
		{"READ of a symlink", func() (nfsv3.Nfsstat3, error) { return status(c.Read(cx, link, 0, 10)) }, nfsv3.NFS3ERR_INVAL},
		{"MKNOD of a character device", func() (nfsv3.Nfsstat3, error) {
			return status(c.Mknod(cx, root, "tty", &nfsv3.Mknoddata3_NF3CHR{Device: nfsv3.Devicedata3{
				DevAttributes: nfsclient.Set{}.Sattr3(), Spec: nfsv3.Specdata3{Specdata1: 4, Specdata2: 1}}}))
		}, nfsv3.NFS3ERR_NOTSUPP},
		{"MKNOD of a FIFO", func() (nfsv3.Nfsstat3, error) {
			return status(c.Mknod(cx, root, "fifo", &nfsv3.Mknoddata3_NF3FIFO{PipeAttributes: nfsclient.Set{}.Sattr3()}))
		}, nfsv3.NFS3ERR_NOTSUPP},
		{"SETATTR with a guard that does not match", func() (nfsv3.Nfsstat3, error) {
			return status(c.Setattr(cx, file, nfsclient.Set{Mode: new(uint32(0o600))}, &stale))
		}, nfsv3.NFS3ERR_NOT_SYNC},
		{"RENAME across volumes", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", other, "f")) }, nfsv3.NFS3ERR_XDEV},
		{"LINK across volumes", func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, file, other, "f")) }, nfsv3.NFS3ERR_XDEV},
		{"RENAME of a missing name", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "missing", root, "x")) }, nfsv3.NFS3ERR_NOENT},
		{"RENAME of a directory into itself", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "dir", sub, "dir")) }, nfsv3.NFS3ERR_INVAL},
		{"RENAME of a directory over a file", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "empty", root, "f")) }, nfsv3.NFS3ERR_NOTDIR},
		{"RENAME of a file over a directory", func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", root, "empty")) }, nfsv3.NFS3ERR_ISDIR},
		{"RENAME of a directory over a non-empty one", func() (nfsv3.Nfsstat3, error) {
			return status(c.Rename(cx, root, "empty", root, "nonempty2"))
		}, nfsv3.NFS3ERR_NOTEMPTY},
		{"LINK to a directory", func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, dir, root, "dirlink")) }, nfsv3.NFS3ERR_PERM},
		{"READDIR of a file", func() (nfsv3.Nfsstat3, error) { return status(c.Readdir(cx, f, 0, [8]byte{}, 4096)) }, nfsv3.NFS3ERR_NOTDIR},
		{"READDIRPLUS of a file", func() (nfsv3.Nfsstat3, error) { return status(c.ReaddirPlusPage(cx, f, 0, [8]byte{}, 4096, 4096)) }, nfsv3.NFS3ERR_NOTDIR},
		{"READDIR with a count too small for one entry", func() (nfsv3.Nfsstat3, error) {
			return status(c.Readdir(cx, dir, 0, [8]byte{}, 64))
		}, nfsv3.NFS3ERR_TOOSMALL},
		{"READDIRPLUS with a maxcount too small for one entry", func() (nfsv3.Nfsstat3, error) {
			return status(c.ReaddirPlusPage(cx, dir, 0, [8]byte{}, 64, 64))
		}, nfsv3.NFS3ERR_TOOSMALL},
		{"READDIR with a made-up cookie verifier", func() (nfsv3.Nfsstat3, error) {
			return status(c.Readdir(cx, dir, 3, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 4096))
		}, nfsv3.NFS3ERR_BAD_COOKIE},
		{"READDIRPLUS with a made-up cookie verifier", func() (nfsv3.Nfsstat3, error) {
			return status(c.ReaddirPlusPage(cx, dir, 3, [8]byte{9, 9, 9}, 4096, 4096))
		}, nfsv3.NFS3ERR_BAD_COOKIE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.run()
			wantStatus(t, tc.name, st, err, tc.want)
		})
	}
	if _, st, err := c.Getattr(cx, root); err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("GETATTR / after the errors: %s %v", statusName(st), err)
	}
}

// mkdirIn makes a directory over NFS and returns its handle.
func (s *server) mkdirIn(c *nfsclient.Client, dir []byte, name string) []byte {
	s.t.Helper()
	r, st, err := c.Mkdir(ctx(s.t), dir, name, nfsclient.Set{})
	must(s.t, "MKDIR "+name, st, err)
	return nfsclient.Handle(r.Obj)
}

// lookup returns the handle of dir/name.
func (s *server) lookup(c *nfsclient.Client, dir []byte, name string) []byte {
	s.t.Helper()
	r, st, err := c.Lookup(ctx(s.t), dir, name)
	must(s.t, "LOOKUP "+name, st, err)
	return r.Object.Data
}

// TestNoSpace fills a volume to its limit: a write that does not fit fails
// with NOSPC and leaves nothing of itself, whether it is one state-machine
// entry or several.
func TestNoSpace(t *testing.T) {
	const limit = 1 << 20
	s := startServer(t, serverOpts{size: limit})
	c, root := s.rootClient()
	cx := ctx(t)
	cr, st, err := c.Create(cx, root, "f", nfsclient.Unchecked(nfsclient.Set{}))
	must(t, "CREATE f", st, err)
	f := nfsclient.Handle(cr.Obj)

	size := func() uint64 {
		a, st, err := c.Getattr(cx, f)
		must(t, "GETATTR f", st, err)
		return a.Size
	}
	free := func() uint64 {
		r, st, err := c.Fsstat(cx, root)
		must(t, "FSSTAT", st, err)
		return r.Fbytes
	}

	// One WRITE larger than the whole volume (split into several entries).
	_, st, err = c.Write(cx, f, 0, bytes.Repeat([]byte{1}, limit+1))
	wantStatus(t, "WRITE of limit+1 bytes", st, err, nfsv3.NFS3ERR_NOSPC)
	if size() != 0 || free() != limit {
		t.Fatalf("after a refused write: size %d, free %d; want 0 and %d", size(), free(), limit)
	}
	// Fill to 768 KiB, then a 512 KiB write (two entries) does not fit.
	must3(t, "WRITE 768 KiB", func() (nfsv3.Nfsstat3, error) {
		_, st, err := c.Write(cx, f, 0, bytes.Repeat([]byte{2}, 768<<10))
		return st, err
	})
	_, st, err = c.Write(cx, f, 768<<10, bytes.Repeat([]byte{3}, 512<<10))
	wantStatus(t, "WRITE of 512 KiB with 256 KiB free", st, err, nfsv3.NFS3ERR_NOSPC)
	// A small write that does not fit either (one entry).
	_, st, err = c.Write(cx, f, 768<<10, bytes.Repeat([]byte{4}, 256<<10+1))
	wantStatus(t, "WRITE of 256 KiB + 1 with 256 KiB free", st, err, nfsv3.NFS3ERR_NOSPC)
	if size() != 768<<10 || free() != 256<<10 {
		t.Fatalf("after refused writes: size %d free %d; want %d and %d", size(), free(), 768<<10, 256<<10)
	}
	data, err := c.ReadFile(cx, f, 0, limit)
	if err != nil || !bytes.Equal(data, bytes.Repeat([]byte{2}, 768<<10)) {
		t.Fatalf("content after refused writes: %d bytes, %v", len(data), err)
	}
	// Exactly filling the volume works; one byte more does not.
	must3(t, "WRITE of the last 256 KiB", func() (nfsv3.Nfsstat3, error) {
		_, st, err := c.Write(cx, f, 768<<10, bytes.Repeat([]byte{5}, 256<<10))
		return st, err
	})
	_, st, err = c.Write(cx, f, limit, []byte{6})
	wantStatus(t, "WRITE of one byte into a full volume", st, err, nfsv3.NFS3ERR_NOSPC)
	if size() != limit || free() != 0 {
		t.Fatalf("full volume: size %d free %d", size(), free())
	}
	// Overwriting stored bytes needs no new space.
	must3(t, "overwrite in a full volume", func() (nfsv3.Nfsstat3, error) {
		_, st, err := c.Write(cx, f, 0, []byte("overwrite"))
		return st, err
	})
}

func must3(t *testing.T, what string, run func() (nfsv3.Nfsstat3, error)) {
	t.Helper()
	st, err := run()
	must(t, what, st, err)
}
