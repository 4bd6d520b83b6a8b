package nfs3

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsstate"
	"keel/internal/nfs/rpc"
)

func (s *Server) NfsV3Nfsproc3Getattr(ctx context.Context, a *nfsv3.Getattr3args) (nfsv3.Getattr3res, error) {
	r, _, cancel, err := s.begin(ctx, a.Object.Data)
	defer cancel()
	if err != nil {
		return &nfsv3.Getattr3res_default{Status: status(err)}, nil
	}
	// begin read the attributes behind the read-index barrier.
	return &nfsv3.Getattr3res_NFS3_OK{Resok: nfsv3.Getattr3resok{ObjAttributes: r.fattr(r.obj)}}, nil
}

// mayExec / mayRead / mayWrite check the caller's access to an inode.
func (r *request) may(ino uint64, want byte) error {
	rd, wr, ex, err := r.st.Access(r.vol.ID, ino, r.cred)
	if err != nil {
		return err
	}
	ok := map[byte]bool{'r': rd, 'w': wr, 'x': ex}[want]
	if !ok {
		return nfsErr(nfsv3.NFS3ERR_ACCES)
	}
	return nil
}

func (s *Server) NfsV3Nfsproc3Lookup(ctx context.Context, a *nfsv3.Lookup3args) (nfsv3.Lookup3res, error) {
	r, h, cancel, err := s.begin(ctx, a.What.Dir.Data)
	defer cancel()
	fail := func(err error) (nfsv3.Lookup3res, error) {
		return &nfsv3.Lookup3res_default{Status: status(err), Resfail: nfsv3.Lookup3resfail{DirAttributes: r.attrOf(h.Ino)}}, nil
	}
	if err != nil {
		return fail(err)
	}
	dir := r.obj // read by begin
	if dir.Type != fsstate.TypeDir {
		return fail(nfsErr(nfsv3.NFS3ERR_NOTDIR))
	}
	if err := r.may(h.Ino, 'x'); err != nil {
		return fail(err)
	}
	if len(a.What.Name) > nameMax {
		return fail(nfsErr(nfsv3.NFS3ERR_NAMETOOLONG))
	}
	at, err := r.st.Lookup(h.Vol, h.Ino, a.What.Name)
	if err != nil {
		return fail(err)
	}
	return &nfsv3.Lookup3res_NFS3_OK{Resok: nfsv3.Lookup3resok{
		Object: nfsv3.NfsFh3{Data: s.handle(r, at)}, ObjAttributes: r.postOp(at, true), DirAttributes: r.postOp(dir, true),
	}}, nil
}

func (s *Server) NfsV3Nfsproc3Access(ctx context.Context, a *nfsv3.Access3args) (nfsv3.Access3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Object.Data)
	defer cancel()
	if err != nil {
		return &nfsv3.Access3res_default{Status: status(err), Resfail: nfsv3.Access3resfail{ObjAttributes: r.attrOf(h.Ino)}}, nil
	}
	at := r.obj // read by begin
	rd, wr, ex, err := r.st.Access(h.Vol, h.Ino, r.cred)
	if err != nil {
		return &nfsv3.Access3res_default{Status: status(err), Resfail: nfsv3.Access3resfail{ObjAttributes: r.postOp(at, true)}}, nil
	}
	if r.vol.Export.ReadOnly {
		wr = false
	}
	var granted uint32
	if rd {
		granted |= nfsv3.ACCESS3_READ
	}
	if wr {
		granted |= nfsv3.ACCESS3_MODIFY | nfsv3.ACCESS3_EXTEND
		if at.Type == fsstate.TypeDir {
			granted |= nfsv3.ACCESS3_DELETE
		}
	}
	if ex {
		if at.Type == fsstate.TypeDir {
			granted |= nfsv3.ACCESS3_LOOKUP
		} else {
			granted |= nfsv3.ACCESS3_EXECUTE
		}
	}
	return &nfsv3.Access3res_NFS3_OK{Resok: nfsv3.Access3resok{ObjAttributes: r.postOp(at, true), Access: granted & a.Access}}, nil
}

func (s *Server) NfsV3Nfsproc3Readlink(ctx context.Context, a *nfsv3.Readlink3args) (nfsv3.Readlink3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Symlink.Data)
	defer cancel()
	if err == nil {
		var t string
		if t, err = r.st.Readlink(h.Vol, h.Ino); err == nil {
			return &nfsv3.Readlink3res_NFS3_OK{Resok: nfsv3.Readlink3resok{SymlinkAttributes: r.attrOf(h.Ino), Data: t}}, nil
		}
	}
	return &nfsv3.Readlink3res_default{Status: status(err), Resfail: nfsv3.Readlink3resfail{SymlinkAttributes: r.attrOf(h.Ino)}}, nil
}

func (s *Server) NfsV3Nfsproc3Read(ctx context.Context, a *nfsv3.Read3args) (nfsv3.Read3res, error) {
	r, h, cancel, err := s.begin(ctx, a.File.Data)
	defer cancel()
	fail := func(err error) (nfsv3.Read3res, error) {
		return &nfsv3.Read3res_default{Status: status(err), Resfail: nfsv3.Read3resfail{FileAttributes: r.attrOf(h.Ino)}}, nil
	}
	if err != nil {
		return fail(err)
	}
	at := r.obj // read by begin
	if at.Type == fsstate.TypeDir {
		return fail(nfsErr(nfsv3.NFS3ERR_ISDIR))
	}
	if at.Type != fsstate.TypeRegular {
		return fail(nfsErr(nfsv3.NFS3ERR_INVAL))
	}
	// The owner may read regardless of the mode (Linux's owner override,
	// which makes open-then-chmod work); others need read permission.
	if r.cred.UID != at.UID {
		if err := r.may(h.Ino, 'r'); err != nil {
			return fail(err)
		}
	}
	buf := readBuf(ctx, int(min(a.Count, MaxIO)))
	n, eof, err := r.st.ReadInto(h.Vol, h.Ino, a.Offset, buf)
	if err != nil {
		return fail(err)
	}
	return &nfsv3.Read3res_NFS3_OK{Resok: nfsv3.Read3resok{FileAttributes: r.postOp(at, true), Count: uint32(n), Eof: eof, Data: buf[:n]}}, nil
}

// readBufs recycles READ data buffers: the RPC layer sends a READ's data
// without copying it, and gives the buffer back once the reply is written.
// Without them, each 1 MiB READ allocated and zeroed a new megabyte, a
// quarter of what a read cost the store (BenchmarkRead1MiB).
var readBufs = sync.Pool{New: func() any { b := make([]byte, MaxIO); return &b }}

// readBuf returns a buffer of n bytes, pooled when the call is served by
// the RPC layer (which returns it after the reply).
func readBuf(ctx context.Context, n int) []byte {
	bp := readBufs.Get().(*[]byte)
	if !rpc.AfterReply(ctx, func() { readBufs.Put(bp) }) {
		readBufs.Put(bp)
		return make([]byte, n)
	}
	return (*bp)[:n]
}

// cookieVerf is a directory's cookie verifier: cookies are never reused in a
// directory, so it only has to change if the directory itself is replaced.
func cookieVerf(dir fsstate.Attr) [8]byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], dir.Gen^dir.Ino)
	return v
}

// dirEntries lists a directory from cookie on, with "." and ".." first, as
// many as fit in budget bytes by the cost function.
func (r *request) dirEntries(dir fsstate.Attr, cookie uint64, verf [8]byte, budget int, cost func(name string) int) ([]fsstate.DirEntry, bool, error) {
	if dir.Type != fsstate.TypeDir {
		return nil, false, nfsErr(nfsv3.NFS3ERR_NOTDIR)
	}
	if cookie != 0 && verf != ([8]byte{}) && verf != cookieVerf(dir) {
		return nil, false, nfsErr(nfsv3.NFS3ERR_BAD_COOKIE)
	}
	if err := r.may(dir.Ino, 'r'); err != nil {
		return nil, false, err
	}
	var out []fsstate.DirEntry
	used := 0
	add := func(e fsstate.DirEntry) bool {
		c := cost(e.Name)
		if used+c > budget {
			return false
		}
		used += c
		out = append(out, e)
		return true
	}
	if cookie < 1 {
		if !add(fsstate.DirEntry{Name: ".", Ino: dir.Ino, Cookie: 1, Attr: dir}) {
			return nil, false, nfsErr(nfsv3.NFS3ERR_TOOSMALL)
		}
	}
	if cookie < 2 {
		parent, err := r.st.GetAttr(r.vol.ID, dir.Parent)
		if err != nil {
			parent = dir
		}
		if !add(fsstate.DirEntry{Name: "..", Ino: parent.Ino, Cookie: 2, Attr: parent}) {
			return out, false, nil
		}
	}
	after := max(cookie, fsstate.FirstCookie-1)
	for {
		ents, eof, err := r.st.ReadDir(r.vol.ID, dir.Ino, after, 256)
		if err != nil {
			return nil, false, err
		}
		for _, e := range ents {
			if !add(e) {
				if len(out) == 0 {
					return nil, false, nfsErr(nfsv3.NFS3ERR_TOOSMALL)
				}
				return out, false, nil
			}
			after = e.Cookie
		}
		if eof || len(ents) == 0 {
			return out, true, nil
		}
	}
}

func xdrString(name string) int { return 4 + (len(name)+3)&^3 }

func (s *Server) NfsV3Nfsproc3Readdir(ctx context.Context, a *nfsv3.Readdir3args) (nfsv3.Readdir3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Dir.Data)
	defer cancel()
	fail := func(err error) (nfsv3.Readdir3res, error) {
		return &nfsv3.Readdir3res_default{Status: status(err), Resfail: nfsv3.Readdir3resfail{DirAttributes: r.attrOf(h.Ino)}}, nil
	}
	if err != nil {
		return fail(err)
	}
	dir := r.obj // read by begin
	// Reply header: status, post-op attrs, verifier, list terminator, eof.
	budget := int(min(a.Count, MaxIO)) - (4 + 4 + 84 + 8 + 4 + 4)
	ents, eof, err := r.dirEntries(dir, a.Cookie, a.Cookieverf, budget, func(n string) int { return 4 + 8 + xdrString(n) + 8 })
	if err != nil {
		return fail(err)
	}
	var head *nfsv3.Entry3
	for i := len(ents) - 1; i >= 0; i-- {
		head = &nfsv3.Entry3{Fileid: ents[i].Ino, Name: ents[i].Name, Cookie: ents[i].Cookie, Nextentry: head}
	}
	return &nfsv3.Readdir3res_NFS3_OK{Resok: nfsv3.Readdir3resok{DirAttributes: r.postOp(dir, true), Cookieverf: cookieVerf(dir),
		Reply: nfsv3.Dirlist3{Entries: head, Eof: eof}}}, nil
}

func (s *Server) NfsV3Nfsproc3Readdirplus(ctx context.Context, a *nfsv3.Readdirplus3args) (nfsv3.Readdirplus3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Dir.Data)
	defer cancel()
	fail := func(err error) (nfsv3.Readdirplus3res, error) {
		return &nfsv3.Readdirplus3res_default{Status: status(err), Resfail: nfsv3.Readdirplus3resfail{DirAttributes: r.attrOf(h.Ino)}}, nil
	}
	if err != nil {
		return fail(err)
	}
	dir := r.obj // read by begin
	budget := int(min(a.Maxcount, MaxIO)) - (4 + 4 + 84 + 8 + 4 + 4)
	entryCost := func(n string) int { return 4 + 8 + xdrString(n) + 8 + 4 + 84 + 4 + 4 + 64 }
	ents, eof, err := r.dirEntries(dir, a.Cookie, a.Cookieverf, budget, entryCost)
	if err != nil {
		return fail(err)
	}
	var head *nfsv3.Entryplus3
	for i := len(ents) - 1; i >= 0; i-- {
		e := ents[i]
		head = &nfsv3.Entryplus3{Fileid: e.Ino, Name: e.Name, Cookie: e.Cookie, NameAttributes: r.postOp(e.Attr, true),
			NameHandle: &nfsv3.PostOpFh3_TRUE{Handle: nfsv3.NfsFh3{Data: s.handle(r, e.Attr)}}, Nextentry: head}
	}
	return &nfsv3.Readdirplus3res_NFS3_OK{Resok: nfsv3.Readdirplus3resok{DirAttributes: r.postOp(dir, true), Cookieverf: cookieVerf(dir),
		Reply: nfsv3.Dirlistplus3{Entries: head, Eof: eof}}}, nil
}

func (s *Server) NfsV3Nfsproc3Fsstat(ctx context.Context, a *nfsv3.Fsstat3args) (nfsv3.Fsstat3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Fsroot.Data)
	defer cancel()
	if err != nil {
		return &nfsv3.Fsstat3res_default{Status: status(err), Resfail: nfsv3.Fsstat3resfail{ObjAttributes: r.attrOf(h.Ino)}}, nil
	}
	v := r.vol
	if r.snap != 0 { // a snapshot reports its own use (and no free space: it is read-only)
		if sv, err := r.st.VolumeByID(r.vol.ID); err == nil {
			v.Used, v.Inodes = sv.Used, sv.Inodes
			v.SizeLimit = sv.Used
		}
	}
	free := uint64(0)
	if v.SizeLimit > v.Used {
		free = v.SizeLimit - v.Used
	}
	const files = 1 << 32
	ffiles := uint64(0)
	if v.Inodes < files {
		ffiles = files - v.Inodes
	}
	return &nfsv3.Fsstat3res_NFS3_OK{Resok: nfsv3.Fsstat3resok{ObjAttributes: r.attrOf(h.Ino),
		Tbytes: v.SizeLimit, Fbytes: free, Abytes: free, Tfiles: files, Ffiles: ffiles, Afiles: ffiles}}, nil
}

func (s *Server) NfsV3Nfsproc3Fsinfo(ctx context.Context, a *nfsv3.Fsinfo3args) (nfsv3.Fsinfo3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Fsroot.Data)
	defer cancel()
	if err != nil {
		return &nfsv3.Fsinfo3res_default{Status: status(err), Resfail: nfsv3.Fsinfo3resfail{ObjAttributes: r.attrOf(h.Ino)}}, nil
	}
	return &nfsv3.Fsinfo3res_NFS3_OK{Resok: nfsv3.Fsinfo3resok{ObjAttributes: r.attrOf(h.Ino),
		Rtmax: MaxIO, Rtpref: MaxIO, Rtmult: 4096, Wtmax: MaxIO, Wtpref: MaxIO, Wtmult: 4096, Dtpref: PrefDir,
		Maxfilesize: MaxFile, TimeDelta: nfsv3.Nfstime3{Nseconds: 1},
		Properties: nfsv3.FSF3_LINK | nfsv3.FSF3_SYMLINK | nfsv3.FSF3_HOMOGENEOUS | nfsv3.FSF3_CANSETTIME}}, nil
}

func (s *Server) NfsV3Nfsproc3Pathconf(ctx context.Context, a *nfsv3.Pathconf3args) (nfsv3.Pathconf3res, error) {
	r, h, cancel, err := s.begin(ctx, a.Object.Data)
	defer cancel()
	if err != nil {
		return &nfsv3.Pathconf3res_default{Status: status(err), Resfail: nfsv3.Pathconf3resfail{ObjAttributes: r.attrOf(h.Ino)}}, nil
	}
	return &nfsv3.Pathconf3res_NFS3_OK{Resok: nfsv3.Pathconf3resok{ObjAttributes: r.attrOf(h.Ino),
		Linkmax: linkMax, NameMax: nameMax, NoTrunc: true, ChownRestricted: true, CaseInsensitive: false, CasePreserving: true}}, nil
}
