package nfs3

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"github.com/cespare/xxhash/v2"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/rpc"
)

// exactlyOnce marks a non-idempotent request so that the state machine
// records its result with the change and answers a retransmission (after a
// reconnect or a fail-over) from that record instead of doing it again. The
// client is named by its address and AUTH_SYS machine name; the arguments
// are hashed so that a reused xid with other arguments is a new request.
func exactlyOnce(ctx context.Context, args io.WriterTo) context.Context {
	return exactlyOnceAs(ctx, args, 0)
}

// writeKey names a WRITE's arguments for the duplicate request cache:
// everything but the data, and a 64-bit hash of the data (SHA-256 over a
// MiB on every write would cost more than the rest of the call; the hash
// only tells a reused xid from a retransmission).
type writeKey struct{ a *nfsv3.Write3args }

func (k writeKey) WriteTo(w io.Writer) (int64, error) {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(k.a.File.Data)))
	b = append(b, k.a.File.Data...)
	b = binary.BigEndian.AppendUint64(b, k.a.Offset)
	b = binary.BigEndian.AppendUint32(b, k.a.Count)
	b = binary.BigEndian.AppendUint32(b, uint32(k.a.Stable))
	b = binary.BigEndian.AppendUint64(b, xxhash.Sum64(k.a.Data))
	n, err := w.Write(b)
	return int64(n), err
}

// followUp marks, in the procedure number of a request id, the SETATTR that
// sets the attributes a CREATE, MKDIR or SYMLINK carries besides the mode:
// it needs a record of its own, or the create's record would answer it as a
// retransmission and the attributes would never be set.
const followUp = 1 << 31

func exactlyOnceAs(ctx context.Context, args io.WriterTo, procFlag uint32) context.Context {
	call, ok := rpc.CallFrom(ctx)
	if !ok {
		return ctx
	}
	h := sha256.New()
	_, _ = args.WriteTo(h)
	id := &fsstate.RequestID{XID: call.XID, Proc: call.Proc | procFlag, Client: call.Remote.Addr().String()}
	if call.Sys != nil && call.Sys.Machinename != "" {
		// Machine names may be 255 bytes; a short digest keeps the id small.
		m := sha256.Sum256([]byte(call.Sys.Machinename))
		id.Client += "/" + hex.EncodeToString(m[:8])
	}
	copy(id.ArgHash[:], h.Sum(nil))
	return fsapi.WithRequest(ctx, id)
}

func (s *Server) NfsV3Nfsproc3Setattr(ctx context.Context, a *nfsv3.Setattr3args) (nfsv3.Setattr3res, error) {
	ctx = exactlyOnce(ctx, a)
	r, h, cancel, err := s.beginChange(ctx, a.Object.Data)
	defer cancel()
	var res fsstate.Result
	if err == nil {
		err = r.writable()
	}
	if err == nil {
		var guard *fsstate.Time
		if g, ok := a.Guard.(*nfsv3.Sattrguard3_TRUE); ok {
			t := fromNfstime(g.ObjCtime)
			guard = &t
		}
		res, err = s.FS.SetAttr(r.ctx, r.cred, h.Vol, h.Ino, s.sattr(a.NewAttributes), guard)
	}
	if err != nil {
		return &nfsv3.Setattr3res_default{Status: status(err), Resfail: nfsv3.Setattr3resfail{ObjWcc: r.wccOr(res.Obj, h.Ino)}}, nil
	}
	return &nfsv3.Setattr3res_NFS3_OK{Resok: nfsv3.Setattr3resok{ObjWcc: r.wcc(res.Obj)}}, nil
}

func (s *Server) NfsV3Nfsproc3Write(ctx context.Context, a *nfsv3.Write3args) (nfsv3.Write3res, error) {
	// A WRITE resent after a fail-over must not take effect a second time:
	// done again after another client's newer write to the same range, it
	// would bring old data back (the chaos runs saw exactly that).
	ctx = exactlyOnce(ctx, writeKey{a})
	r, h, cancel, err := s.beginChange(ctx, a.File.Data)
	defer cancel()
	var res fsstate.Result
	if err == nil {
		err = r.writable()
	}
	if err == nil && int(a.Count) > len(a.Data) {
		err = nfsErr(nfsv3.NFS3ERR_INVAL)
	}
	if err == nil && s.UnstableWrites && a.Stable == nfsv3.UNSTABLE && a.Count > 0 {
		// Answered once in the replication pipeline; the verifier is read
		// first, so that losing this write changes the one COMMIT gives.
		verf := s.verifier()
		if err = s.FS.WriteUnstable(r.ctx, r.cred, h.Vol, h.Ino, a.Offset, a.Data[:a.Count]); err == nil {
			return &nfsv3.Write3res_NFS3_OK{Resok: nfsv3.Write3resok{FileWcc: r.wcc(fsstate.WCC{}), Count: a.Count,
				Committed: nfsv3.UNSTABLE, Verf: verf}}, nil
		}
	} else if err == nil {
		res, err = s.FS.Write(r.ctx, r.cred, h.Vol, h.Ino, a.Offset, a.Data[:a.Count])
	}
	if err != nil {
		return &nfsv3.Write3res_default{Status: status(err), Resfail: nfsv3.Write3resfail{FileWcc: r.wccOr(res.Obj, h.Ino)}}, nil
	}
	// Committed on a quorum before this reply.
	return &nfsv3.Write3res_NFS3_OK{Resok: nfsv3.Write3resok{FileWcc: r.wcc(res.Obj), Count: a.Count,
		Committed: nfsv3.FILE_SYNC, Verf: s.verifier()}}, nil
}

// NfsV3Nfsproc3Commit answers once every unstable write to the file
// answered before has been committed on a quorum and applied; the verifier
// it returns then differs from a WRITE reply's if that write was lost.
func (s *Server) NfsV3Nfsproc3Commit(ctx context.Context, a *nfsv3.Commit3args) (nfsv3.Commit3res, error) {
	r, h, cancel, err := s.begin(ctx, a.File.Data)
	defer cancel()
	if err == nil && h.Snap == 0 {
		err = s.FS.Commit(r.ctx, h.Vol, h.Ino)
	}
	if err != nil {
		return &nfsv3.Commit3res_default{Status: status(err), Resfail: nfsv3.Commit3resfail{FileWcc: r.wccOr(fsstate.WCC{}, h.Ino)}}, nil
	}
	return &nfsv3.Commit3res_NFS3_OK{Resok: nfsv3.Commit3resok{FileWcc: r.wccOr(fsstate.WCC{}, h.Ino), Verf: s.verifier()}}, nil
}

// createIn runs a create of any type in a directory named by handle, then
// sets the other attributes in set; wire is the call's arguments.
func (s *Server) createIn(ctx context.Context, where nfsv3.Diropargs3, args fsapi.CreateArgs, set fsstate.SetAttr, wire io.WriterTo) (*request, fsstate.Result, fh.Handle, error) {
	r, h, cancel, err := s.beginChange(ctx, where.Dir.Data)
	defer cancel()
	if err == nil {
		err = r.writable()
	}
	if err != nil {
		return r, fsstate.Result{}, h, err
	}
	args.Vol, args.Dir, args.Name = h.Vol, h.Ino, where.Name
	args.UID, args.GID = r.cred.UID, r.cred.GID
	res, err := s.FS.Create(r.ctx, r.cred, args)
	// A retransmitted create runs this too: its SETATTR is then answered
	// from its own record (or made now if it never was).
	if err == nil && (set.Size != nil || set.Atime != nil || set.Mtime != nil || set.UID != nil || set.GID != nil) {
		set.Mode = nil // already applied by the create
		sres, serr := s.FS.SetAttr(exactlyOnceAs(r.ctx, wire, followUp), r.cred, h.Vol, res.Attr.Ino, set, nil)
		if serr == nil {
			res.Attr = sres.Attr
		}
	}
	return r, res, h, err
}

func modeOr(a nfsv3.Sattr3, def uint32) uint32 {
	if m, ok := a.Mode.(*nfsv3.SetMode3_TRUE); ok {
		return m.Mode & 0o7777
	}
	return def
}

func (s *Server) NfsV3Nfsproc3Create(ctx context.Context, a *nfsv3.Create3args) (nfsv3.Create3res, error) {
	ctx = exactlyOnce(ctx, a)
	args := fsapi.CreateArgs{Type: fsstate.TypeRegular, Mode: 0o644}
	var set fsstate.SetAttr
	switch how := a.How.(type) {
	case *nfsv3.Createhow3_UNCHECKED:
		args.CreateMode, args.Mode, set = fsstate.CreateUnchecked, modeOr(how.ObjAttributes, 0o644), s.sattr(how.ObjAttributes)
	case *nfsv3.Createhow3_GUARDED:
		args.CreateMode, args.Mode, set = fsstate.CreateGuarded, modeOr(how.ObjAttributes, 0o644), s.sattr(how.ObjAttributes)
	case *nfsv3.Createhow3_EXCLUSIVE:
		args.CreateMode = fsstate.CreateExclusive
		for _, b := range how.Verf {
			args.Verf = args.Verf<<8 | uint64(b)
		}
	}
	r, res, h, err := s.createIn(ctx, a.Where, args, set, a)
	if err != nil {
		return &nfsv3.Create3res_default{Status: status(err), Resfail: nfsv3.Create3resfail{DirWcc: r.wccOr(res.Dir, h.Ino)}}, nil
	}
	return &nfsv3.Create3res_NFS3_OK{Resok: nfsv3.Create3resok{
		Obj:           &nfsv3.PostOpFh3_TRUE{Handle: nfsv3.NfsFh3{Data: s.handle(r, res.Attr)}},
		ObjAttributes: r.postOp(res.Attr, true), DirWcc: r.wcc(res.Dir)}}, nil
}

func (s *Server) NfsV3Nfsproc3Mkdir(ctx context.Context, a *nfsv3.Mkdir3args) (nfsv3.Mkdir3res, error) {
	ctx = exactlyOnce(ctx, a)
	set := s.sattr(a.Attributes)
	set.Size = nil
	r, res, h, err := s.createIn(ctx, a.Where, fsapi.CreateArgs{Type: fsstate.TypeDir, Mode: modeOr(a.Attributes, 0o755)}, set, a)
	if err != nil {
		return &nfsv3.Mkdir3res_default{Status: status(err), Resfail: nfsv3.Mkdir3resfail{DirWcc: r.wccOr(res.Dir, h.Ino)}}, nil
	}
	return &nfsv3.Mkdir3res_NFS3_OK{Resok: nfsv3.Mkdir3resok{
		Obj:           &nfsv3.PostOpFh3_TRUE{Handle: nfsv3.NfsFh3{Data: s.handle(r, res.Attr)}},
		ObjAttributes: r.postOp(res.Attr, true), DirWcc: r.wcc(res.Dir)}}, nil
}

func (s *Server) NfsV3Nfsproc3Symlink(ctx context.Context, a *nfsv3.Symlink3args) (nfsv3.Symlink3res, error) {
	ctx = exactlyOnce(ctx, a)
	r, res, h, err := s.createIn(ctx, a.Where, fsapi.CreateArgs{Type: fsstate.TypeSymlink, Mode: 0o777, Target: a.Symlink.SymlinkData}, fsstate.SetAttr{}, a)
	if err != nil {
		return &nfsv3.Symlink3res_default{Status: status(err), Resfail: nfsv3.Symlink3resfail{DirWcc: r.wccOr(res.Dir, h.Ino)}}, nil
	}
	return &nfsv3.Symlink3res_NFS3_OK{Resok: nfsv3.Symlink3resok{
		Obj:           &nfsv3.PostOpFh3_TRUE{Handle: nfsv3.NfsFh3{Data: s.handle(r, res.Attr)}},
		ObjAttributes: r.postOp(res.Attr, true), DirWcc: r.wcc(res.Dir)}}, nil
}

// Mknod: keel stores regular files, directories and symlinks only; device
// nodes, sockets and FIFOs are NOTSUPP (which RFC 1813 allows).
func (s *Server) NfsV3Nfsproc3Mknod(ctx context.Context, a *nfsv3.Mknod3args) (nfsv3.Mknod3res, error) {
	r, h, cancel, err := s.beginChange(ctx, a.Where.Dir.Data)
	defer cancel()
	if err == nil {
		err = r.writable()
	}
	if err == nil {
		err = nfsErr(nfsv3.NFS3ERR_NOTSUPP)
	}
	return &nfsv3.Mknod3res_default{Status: status(err), Resfail: nfsv3.Mknod3resfail{DirWcc: r.wccOr(fsstate.WCC{}, h.Ino)}}, nil
}

// dirChange runs a change in one directory (REMOVE, RMDIR).
func (s *Server) dirChange(ctx context.Context, where nfsv3.Diropargs3, op func(r *request, vol, dir uint64, name string) (fsstate.Result, error)) (nfsv3.WccData, error) {
	r, h, cancel, err := s.beginChange(ctx, where.Dir.Data)
	defer cancel()
	var res fsstate.Result
	if err == nil {
		err = r.writable()
	}
	if err == nil {
		res, err = op(r, h.Vol, h.Ino, where.Name)
	}
	if err != nil {
		return r.wccOr(res.Dir, h.Ino), err
	}
	return r.wcc(res.Dir), nil
}

func (s *Server) NfsV3Nfsproc3Remove(ctx context.Context, a *nfsv3.Remove3args) (nfsv3.Remove3res, error) {
	ctx = exactlyOnce(ctx, a)
	w, err := s.dirChange(ctx, a.Object, func(r *request, vol, dir uint64, name string) (fsstate.Result, error) {
		return s.FS.Remove(r.ctx, r.cred, vol, dir, name)
	})
	if err != nil {
		return &nfsv3.Remove3res_default{Status: status(err), Resfail: nfsv3.Remove3resfail{DirWcc: w}}, nil
	}
	return &nfsv3.Remove3res_NFS3_OK{Resok: nfsv3.Remove3resok{DirWcc: w}}, nil
}

func (s *Server) NfsV3Nfsproc3Rmdir(ctx context.Context, a *nfsv3.Rmdir3args) (nfsv3.Rmdir3res, error) {
	ctx = exactlyOnce(ctx, a)
	w, err := s.dirChange(ctx, a.Object, func(r *request, vol, dir uint64, name string) (fsstate.Result, error) {
		return s.FS.Rmdir(r.ctx, r.cred, vol, dir, name)
	})
	if err != nil {
		return &nfsv3.Rmdir3res_default{Status: status(err), Resfail: nfsv3.Rmdir3resfail{DirWcc: w}}, nil
	}
	return &nfsv3.Rmdir3res_NFS3_OK{Resok: nfsv3.Rmdir3resok{DirWcc: w}}, nil
}

func (s *Server) NfsV3Nfsproc3Rename(ctx context.Context, a *nfsv3.Rename3args) (nfsv3.Rename3res, error) {
	ctx = exactlyOnce(ctx, a)
	r, from, cancel, err := s.beginChange(ctx, a.From.Dir.Data)
	defer cancel()
	var res fsstate.Result
	var to fh.Handle
	if err == nil {
		err = r.writable()
	}
	if err == nil {
		to, err = s.Handles.Decode(a.To.Dir.Data)
		// A snapshot is another (read-only) filesystem: a handle in one
		// names the volume's inode numbers, so taking it for the live
		// directory would move the file within the live volume.
		if err == nil && (to.Vol != from.Vol || to.Snap != from.Snap) {
			err = nfsErr(nfsv3.NFS3ERR_XDEV)
		}
	}
	// The destination directory is checked when the rename is applied
	// (inode numbers are never reused, so a removed one cannot match).
	if err == nil {
		res, err = s.FS.Rename(r.ctx, r.cred, from.Vol, from.Ino, a.From.Name, to.Ino, a.To.Name)
	}
	if err != nil {
		return &nfsv3.Rename3res_default{Status: status(err), Resfail: nfsv3.Rename3resfail{
			FromdirWcc: r.wccOr(res.Dir, from.Ino), TodirWcc: r.wccOr(res.ToDir, to.Ino)}}, nil
	}
	return &nfsv3.Rename3res_NFS3_OK{Resok: nfsv3.Rename3resok{FromdirWcc: r.wcc(res.Dir), TodirWcc: r.wcc(res.ToDir)}}, nil
}

func (s *Server) NfsV3Nfsproc3Link(ctx context.Context, a *nfsv3.Link3args) (nfsv3.Link3res, error) {
	ctx = exactlyOnce(ctx, a)
	r, file, cancel, err := s.beginChange(ctx, a.File.Data)
	defer cancel()
	var res fsstate.Result
	var dir fh.Handle
	if err == nil {
		err = r.writable()
	}
	if err == nil {
		dir, err = s.Handles.Decode(a.Link.Dir.Data)
		if err == nil && (dir.Vol != file.Vol || dir.Snap != file.Snap) { // see Rename
			err = nfsErr(nfsv3.NFS3ERR_XDEV)
		}
	}
	if err == nil {
		res, err = s.FS.Link(r.ctx, r.cred, file.Vol, file.Ino, dir.Ino, a.Link.Name)
	}
	if err != nil {
		return &nfsv3.Link3res_default{Status: status(err), Resfail: nfsv3.Link3resfail{FileAttributes: r.attrOf(file.Ino),
			LinkdirWcc: r.wccOr(res.Dir, dir.Ino)}}, nil
	}
	return &nfsv3.Link3res_NFS3_OK{Resok: nfsv3.Link3resok{FileAttributes: r.postOp(res.Attr, true), LinkdirWcc: r.wcc(res.Dir)}}, nil
}
