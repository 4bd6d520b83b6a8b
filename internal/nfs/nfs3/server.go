// Package nfs3 is keel's NFS version 3 server (RFC 1813): all 22 procedures
// over the replicated filesystem (internal/fsapi), with file handles from
// internal/nfs/fh, per-volume exports (client networks, read-only, root /
// all squash) and permission checks from uid/gid/mode as a Linux server
// makes them. The XDR types and the procedure dispatch are generated
// (github.com/buildbarn/go-xdr's nfsv3 package); the semantics are ours.
//
// Every change answers only after it is committed on a quorum. With
// Server.UnstableWrites on, a WRITE with stable_how UNSTABLE is the
// exception: it is answered UNSTABLE once its entries are in the
// replication pipeline (fsapi.WriteUnstable); COMMIT waits for the
// file's unstable writes before it answers, and so do reads of the file. The
// write verifier is the leader's raft term in its high 32 bits and the
// epoch of lost unstable writes (fsapi.WriteEpoch) in its low 32: it
// changes at every fail-over and whenever an unstable write did not make
// it, so a client resends what it wrote UNSTABLE and was not committed.
package nfs3

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsapi"
	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/rpc"
	"keel/internal/replication"
)

// FS is what the server needs from the filesystem API.
type FS interface {
	View(ctx context.Context) (*fsstate.Store, error)
	Local() (*fsstate.Store, error)
	Create(ctx context.Context, cred *fsstate.Cred, a fsapi.CreateArgs) (fsstate.Result, error)
	SetAttr(ctx context.Context, cred *fsstate.Cred, vol, ino uint64, set fsstate.SetAttr, guard *fsstate.Time) (fsstate.Result, error)
	Write(ctx context.Context, cred *fsstate.Cred, vol, ino, off uint64, data []byte) (fsstate.Result, error)
	WriteUnstable(ctx context.Context, cred *fsstate.Cred, vol, ino, off uint64, data []byte) error
	Commit(ctx context.Context, vol, ino uint64) error
	Settle(ctx context.Context, vol, ino uint64) error
	WriteEpoch() uint32
	Remove(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string) (fsstate.Result, error)
	Rmdir(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string) (fsstate.Result, error)
	Rename(ctx context.Context, cred *fsstate.Cred, vol, dir uint64, name string, toDir uint64, toName string) (fsstate.Result, error)
	Link(ctx context.Context, cred *fsstate.Cred, vol, ino, dir uint64, name string) (fsstate.Result, error)
	Now() fsstate.Time
}

// Server implements nfsv3.NfsProgram.
type Server struct {
	FS       FS
	Handles  *fh.Codec
	Verifier func() uint64 // the leader's term (the high 32 bits of the write verifier)
	// UnstableWrites answers WRITEs sent UNSTABLE from the replication
	// pipeline (see the package doc). Off, every WRITE is answered
	// FILE_SYNC after commit: safe with clients that ignore the verifier
	// (libnfs does), which would otherwise lose what a dead leader had
	// answered UNSTABLE.
	UnstableWrites bool
	Log            *slog.Logger
	Timeout        time.Duration // per request; 0 means 30 s

	snapNames sync.Map // [vol, raft index] → snapRef: a snapshot's index never changes
}

// snapRef is the snapshot a handle's raft index was found to name: its name,
// and the store OpenSnapshot gave for it. A snapshot deleted and made again
// under the same name opens as another store (so does one reloaded from a
// raft snapshot), which tells the cached name no longer names that index.
type snapRef struct {
	name string
	st   *fsstate.Store
}

var _ nfsv3.NfsProgram = (*Server)(nil)

// Limits advertised in FSINFO.
const (
	MaxIO    = 1 << 20
	PrefDir  = 64 << 10
	MaxFile  = 1 << 62
	nameMax  = fsstate.MaxNameLen
	linkMax  = 1<<31 - 1
	anonUser = 65534
)

// request is one call's context: its state view, volume, and caller.
type request struct {
	ctx  context.Context
	st   *fsstate.Store // the live state, or a snapshot's
	vol  fsstate.Volume
	snap uint64 // the snapshot's raft index; 0 for the live volume
	cred *fsstate.Cred
	call *rpc.Call
	// obj is the attributes of the handle the request was opened with,
	// read when it was opened (beginAt) to tell a stale handle.
	obj fsstate.Attr
}

// nfsErr carries an NFS status out of the helpers.
type nfsErr nfsv3.Nfsstat3

func (e nfsErr) Error() string { return "nfs3: status " + itoa(int(e)) }

func itoa(i int) string {
	b := []byte{}
	neg := i < 0
	if neg {
		i = -i
	}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			break
		}
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

// status maps an error to an NFS status.
func status(err error) nfsv3.Nfsstat3 {
	if err == nil {
		return nfsv3.NFS3_OK
	}
	var ne nfsErr
	if errors.As(err, &ne) {
		return nfsv3.Nfsstat3(ne)
	}
	if errors.Is(err, fh.ErrBadHandle) {
		return nfsv3.NFS3ERR_BADHANDLE
	}
	var nl *replication.NotLeaderError
	if errors.As(err, &nl) || errors.Is(err, replication.ErrUnknownOutcome) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nfsv3.NFS3ERR_JUKEBOX // try again: the active node is changing
	}
	if errors.Is(err, fsstate.ErrNotSync) {
		return nfsv3.NFS3ERR_NOT_SYNC
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return nfsv3.NFS3ERR_SERVERFAULT
	}
	switch errno {
	case syscall.EPERM:
		return nfsv3.NFS3ERR_PERM
	case syscall.ENOENT:
		return nfsv3.NFS3ERR_NOENT
	case syscall.EIO:
		return nfsv3.NFS3ERR_IO
	case syscall.EACCES:
		return nfsv3.NFS3ERR_ACCES
	case syscall.EEXIST:
		return nfsv3.NFS3ERR_EXIST
	case syscall.EXDEV:
		return nfsv3.NFS3ERR_XDEV
	case syscall.ENOTDIR:
		return nfsv3.NFS3ERR_NOTDIR
	case syscall.EISDIR:
		return nfsv3.NFS3ERR_ISDIR
	case syscall.EINVAL, syscall.ELOOP:
		return nfsv3.NFS3ERR_INVAL
	case syscall.EFBIG:
		return nfsv3.NFS3ERR_FBIG
	case syscall.ENOSPC:
		return nfsv3.NFS3ERR_NOSPC
	case syscall.EROFS:
		return nfsv3.NFS3ERR_ROFS
	case syscall.EMLINK:
		return nfsv3.NFS3ERR_MLINK
	case syscall.ENAMETOOLONG:
		return nfsv3.NFS3ERR_NAMETOOLONG
	case syscall.ENOTEMPTY:
		return nfsv3.NFS3ERR_NOTEMPTY
	case syscall.EDQUOT:
		return nfsv3.NFS3ERR_DQUOT
	case syscall.ESTALE:
		return nfsv3.NFS3ERR_STALE
	case syscall.ENOTSUP:
		return nfsv3.NFS3ERR_NOTSUPP
	}
	return nfsv3.NFS3ERR_IO
}

// begin opens a request on the volume a handle names: one read-index
// barrier, the export check for the caller's address, and its credentials
// after squashing.
func (s *Server) begin(ctx context.Context, handle []byte) (*request, fh.Handle, context.CancelFunc, error) {
	return s.beginAt(ctx, handle, false)
}

// beginChange opens a request that changes state: it reads this node's
// state without the read-index barrier, since the change itself goes
// through raft and is checked again when applied.
func (s *Server) beginChange(ctx context.Context, handle []byte) (*request, fh.Handle, context.CancelFunc, error) {
	return s.beginAt(ctx, handle, true)
}

func (s *Server) beginAt(ctx context.Context, handle []byte, local bool) (*request, fh.Handle, context.CancelFunc, error) {
	h, err := s.Handles.Decode(handle)
	if err != nil {
		return nil, h, func() {}, err
	}
	if h.Snap != 0 {
		local = false // snapshots are read-only: no change will check again
	} else if !local {
		// A read sees the file's unstable writes answered before it.
		if err := s.FS.Settle(ctx, h.Vol, h.Ino); err != nil {
			return nil, h, func() {}, err
		}
	}
	r, cancel, err := s.open(ctx, h.Vol, local)
	if err == nil && h.Snap != 0 {
		err = s.useSnapshot(r, h.Snap)
	}
	if err == nil {
		if a, gerr := r.st.GetAttr(h.Vol, h.Ino); gerr != nil || a.Gen != h.Gen {
			err = nfsErr(nfsv3.NFS3ERR_STALE)
		} else {
			r.obj = a
		}
	}
	if err != nil && local {
		// This node's state may lag just after it became the leader: look
		// again behind the barrier before calling the handle stale.
		cancel()
		return s.beginAt(ctx, handle, false)
	}
	return r, h, cancel, err
}

func (s *Server) open(ctx context.Context, vol uint64, local bool) (*request, context.CancelFunc, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	var st *fsstate.Store
	var err error
	if local {
		st, err = s.FS.Local()
	} else {
		st, err = s.FS.View(ctx)
	}
	if err != nil {
		return nil, cancel, err
	}
	v, err := st.VolumeByID(vol)
	if err != nil {
		return nil, cancel, nfsErr(nfsv3.NFS3ERR_STALE) // the volume is gone
	}
	call, _ := rpc.CallFrom(ctx)
	r := &request{ctx: ctx, st: st, vol: v, call: call}
	if call != nil && !v.Export.Allows(call.Remote.Addr()) {
		return r, cancel, nfsErr(nfsv3.NFS3ERR_ACCES)
	}
	r.cred = Credentials(call, v.Export)
	return r, cancel, nil
}

// Credentials turns a call's AUTH_SYS (or AUTH_NONE) identity into the one
// the export grants: root_squash maps uid 0 to the anonymous user,
// all_squash maps everyone, no_root_squash keeps root.
func Credentials(call *rpc.Call, e fsstate.Export) *fsstate.Cred {
	anon := &fsstate.Cred{UID: e.AnonUID, GID: e.AnonGID}
	if call == nil || call.Sys == nil || e.Squash == fsstate.SquashAll {
		return anon
	}
	c := &fsstate.Cred{UID: call.Sys.Uid, GID: call.Sys.Gid, GIDs: append([]uint32(nil), call.Sys.Gids...)}
	if e.Squash == fsstate.SquashRoot {
		if c.UID == 0 {
			c.UID = e.AnonUID
		}
		if c.GID == 0 {
			c.GID = e.AnonGID
		}
		for i, g := range c.GIDs {
			if g == 0 {
				c.GIDs[i] = e.AnonGID
			}
		}
	}
	return c
}

// useSnapshot switches a request to a snapshot of its volume, read-only.
func (s *Server) useSnapshot(r *request, index uint64) error {
	key := [2]uint64{r.vol.ID, index}
	if v, ok := s.snapNames.Load(key); ok {
		ref := v.(snapRef)
		if st, err := r.st.OpenSnapshot(r.vol.ID, ref.name); err == nil && st == ref.st {
			r.st, r.snap = st, index
			r.vol.Export.ReadOnly = true
			return nil
		}
		s.snapNames.Delete(key)
	}
	name, ok, err := snapshotAt(r.st, r.vol.ID, index)
	if err != nil || !ok {
		return staleUnless(err)
	}
	st, err := r.st.OpenSnapshot(r.vol.ID, name)
	if err != nil {
		return err
	}
	// The name may have been deleted and taken again in between: look once
	// more, so that the store remembered is the one taken at index.
	if again, ok, err := snapshotAt(r.st, r.vol.ID, index); err != nil || !ok || again != name {
		return staleUnless(err)
	}
	s.snapNames.Store(key, snapRef{name: name, st: st})
	r.st, r.snap = st, index
	r.vol.Export.ReadOnly = true
	return nil
}

// snapshotAt returns the name of the snapshot of volume vol taken at raft
// index, if there is one and its directory is there.
func snapshotAt(st *fsstate.Store, vol, index uint64) (string, bool, error) {
	snaps, err := st.Snapshots(vol)
	if err != nil {
		return "", false, err
	}
	for _, sn := range snaps {
		if sn.Index == index && !sn.Missing {
			return sn.Name, true, nil
		}
	}
	return "", false, nil
}

// staleUnless returns err, or STALE (the snapshot is deleted) if it is nil.
func staleUnless(err error) error {
	if err != nil {
		return err
	}
	return nfsErr(nfsv3.NFS3ERR_STALE)
}

// writable refuses changes on a read-only export.
func (r *request) writable() error {
	if r.vol.Export.ReadOnly {
		return nfsErr(nfsv3.NFS3ERR_ROFS)
	}
	return nil
}

// handle makes the file handle of an inode in the request's volume (or
// snapshot).
func (s *Server) handle(r *request, a fsstate.Attr) []byte {
	return s.Handles.Encode(fh.Handle{Vol: r.vol.ID, Ino: a.Ino, Gen: a.Gen, Snap: r.snap})
}

// verifier is the write verifier: read it before an unstable write is
// proposed, and after COMMIT has waited for the writes before it.
func (s *Server) verifier() [8]byte {
	var v [8]byte
	if s.Verifier != nil {
		binary.BigEndian.PutUint32(v[:4], uint32(s.Verifier()))
	}
	binary.BigEndian.PutUint32(v[4:], s.FS.WriteEpoch())
	return v
}

func nfstime(t fsstate.Time) nfsv3.Nfstime3 {
	ns := int64(t)
	if ns < 0 {
		ns = 0
	}
	return nfsv3.Nfstime3{Seconds: uint32(ns / 1e9), Nseconds: uint32(ns % 1e9)}
}

func fromNfstime(t nfsv3.Nfstime3) fsstate.Time {
	return fsstate.Time(int64(t.Seconds)*1e9 + int64(t.Nseconds))
}

func ftype(t fsstate.FileType) nfsv3.Ftype3 {
	switch t {
	case fsstate.TypeDir:
		return nfsv3.NF3DIR
	case fsstate.TypeSymlink:
		return nfsv3.NF3LNK
	}
	return nfsv3.NF3REG
}

// snapFsid is the fsid of a volume snapshot: it must differ from the live
// volume's so that clients do not take a snapshot's files for the live ones
// (same fileid), and be the same on every node.
func snapFsid(vol, snap uint64) uint64 { return 1<<63 | vol<<40 ^ snap }

func (r *request) fattr(a fsstate.Attr) nfsv3.Fattr3 {
	fsid := a.Vol
	if r != nil && r.snap != 0 {
		fsid = snapFsid(a.Vol, r.snap)
	}
	return nfsv3.Fattr3{
		Type: ftype(a.Type), Mode: a.Mode, Nlink: a.Nlink, Uid: a.UID, Gid: a.GID,
		Size: a.Size, Used: a.Used, Fsid: fsid, Fileid: a.Ino,
		Atime: nfstime(a.Atime), Mtime: nfstime(a.Mtime), Ctime: nfstime(a.Ctime),
	}
}

func (r *request) postOp(a fsstate.Attr, ok bool) nfsv3.PostOpAttr {
	if !ok {
		return &nfsv3.PostOpAttr_FALSE{}
	}
	return &nfsv3.PostOpAttr_TRUE{Attributes: r.fattr(a)}
}

// attrOf returns post-op attributes of an inode read from the request's view.
func (r *request) attrOf(ino uint64) nfsv3.PostOpAttr {
	if r == nil {
		return &nfsv3.PostOpAttr_FALSE{}
	}
	a, err := r.st.GetAttr(r.vol.ID, ino)
	return r.postOp(a, err == nil)
}

func (r *request) wcc(w fsstate.WCC) nfsv3.WccData {
	if !w.Valid {
		return nfsv3.WccData{Before: &nfsv3.PreOpAttr_FALSE{}, After: &nfsv3.PostOpAttr_FALSE{}}
	}
	return nfsv3.WccData{
		Before: &nfsv3.PreOpAttr_TRUE{Attributes: nfsv3.WccAttr{Size: w.Pre.Size, Mtime: nfstime(w.Pre.Mtime), Ctime: nfstime(w.Pre.Ctime)}},
		After:  &nfsv3.PostOpAttr_TRUE{Attributes: r.fattr(w.Post)},
	}
}

// wccOr returns the result's WCC data, or the current attributes as post-op
// data when the change did not get that far.
func (r *request) wccOr(w fsstate.WCC, ino uint64) nfsv3.WccData {
	if w.Valid {
		return r.wcc(w)
	}
	return nfsv3.WccData{Before: &nfsv3.PreOpAttr_FALSE{}, After: r.attrOf(ino)}
}

// timeToSet resolves a settable time: the client's, the leader's clock for
// SET_TO_SERVER_TIME, or nil for DONT_CHANGE.
func (s *Server) timeToSet(client *nfsv3.Nfstime3, how nfsv3.TimeHow) *fsstate.Time {
	var v fsstate.Time
	switch how {
	case nfsv3.SET_TO_CLIENT_TIME:
		v = fromNfstime(*client)
	case nfsv3.SET_TO_SERVER_TIME:
		v = s.FS.Now()
	default:
		return nil
	}
	return &v
}

// sattr converts NFS settable attributes.
func (s *Server) sattr(a nfsv3.Sattr3) fsstate.SetAttr {
	var set fsstate.SetAttr
	if m, ok := a.Mode.(*nfsv3.SetMode3_TRUE); ok {
		v := m.Mode & 0o7777
		set.Mode = &v
	}
	if u, ok := a.Uid.(*nfsv3.SetUid3_TRUE); ok {
		v := u.Uid
		set.UID = &v
	}
	if g, ok := a.Gid.(*nfsv3.SetGid3_TRUE); ok {
		v := g.Gid
		set.GID = &v
	}
	if sz, ok := a.Size.(*nfsv3.SetSize3_TRUE); ok {
		v := sz.Size
		set.Size = &v
	}
	switch t := a.Atime.(type) {
	case *nfsv3.SetAtime_SET_TO_CLIENT_TIME:
		set.Atime = s.timeToSet(&t.Atime, nfsv3.SET_TO_CLIENT_TIME)
	case *nfsv3.SetAtime_default:
		set.Atime = s.timeToSet(nil, t.SetIt)
	}
	switch t := a.Mtime.(type) {
	case *nfsv3.SetMtime_SET_TO_CLIENT_TIME:
		set.Mtime = s.timeToSet(&t.Mtime, nfsv3.SET_TO_CLIENT_TIME)
	case *nfsv3.SetMtime_default:
		set.Mtime = s.timeToSet(nil, t.SetIt)
	}
	return set
}

func (s *Server) NfsV3Nfsproc3Null(context.Context) error { return nil }
