// Package conformance tests keel's NFS service as clients see it: ONC RPC
// framing and errors, the 22 NFSv3 procedures with their RFC 1813 status
// codes, exports (client networks, read-only, squashing), the duplicate
// request cache, directory paging, MOUNT and the portmapper. Every test
// runs the real services (internal/nfs/rpc, nfs3, mount, portmap) on
// 127.0.0.1 over a filesystem state machine applied directly, without raft,
// and talks to them with internal/nfs/nfsclient or hand-built bytes.
package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsapi"
	"keel/internal/fsapi/fsapitest"
	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	nfsmount "keel/internal/nfs/mount"
	"keel/internal/nfs/nfs3"
	"keel/internal/nfs/nfsclient"
	"keel/internal/nfs/portmap"
	"keel/internal/nfs/rpc"
)

// writeVerifier is what the test server reports as the leader's term.
const writeVerifier = 7

// server is one in-process NFS service over its own state.
type server struct {
	t       *testing.T // nil for buildServer's
	repl    *fsapitest.Local
	fs      *fsapi.FS
	handles *fh.Codec
	rpc     *rpc.Server
	addr    string
	port    uint32
	vol     fsstate.Volume // "data"
}

type serverOpts struct {
	size   uint64          // size limit of volume "data" (0: 1 GiB)
	export *fsstate.Export // nil: 127.0.0.0/8, read-write, no_root_squash
}

// noRootSquash is the export most tests use: the test client is root.
func noRootSquash() fsstate.Export {
	e := fsstate.DefaultExport()
	e.Clients = []string{"127.0.0.0/8"}
	e.Squash = fsstate.SquashNone
	return e
}

// startServer runs NFSv3, MOUNT and the portmapper on 127.0.0.1:0 over a
// new store with volume "data" and its export set.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	s := buildServer(t, o)
	s.t = t
	return s
}

// buildServer is startServer for any testing.TB (a fuzz target's *testing.F
// too); the server's helpers that fail a test need startServer's.
func buildServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	st, err := fsstate.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &server{repl: fsapitest.New(st), handles: fh.NewCodec([]byte("conformance test secret"))}
	s.fs = fsapi.New(s.repl)
	if o.size == 0 {
		o.size = 1 << 30
	}
	if s.vol, err = s.fs.CreateVolume(ctx(t), "data", o.size); err != nil {
		t.Fatal(err)
	}
	e := noRootSquash()
	if o.export != nil {
		e = *o.export
	}
	if _, err := s.fs.SetExport(ctx(t), "data", e); err != nil {
		t.Fatalf("set export of data: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.port = uint32(ln.Addr().(*net.TCPAddr).Port)
	maps := []portmap.Mapping{
		{Prog: nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, Vers: 3, Prot: portmap.IPPROTO_TCP, Port: s.port},
		{Prog: mount.MOUNT_PROGRAM_PROGRAM_NUMBER, Vers: 3, Prot: portmap.IPPROTO_TCP, Port: s.port},
		{Prog: mount.MOUNT_PROGRAM_PROGRAM_NUMBER, Vers: 1, Prot: portmap.IPPROTO_TCP, Port: s.port},
		{Prog: portmap.Program, Vers: 2, Prot: portmap.IPPROTO_TCP, Port: s.port},
	}
	srv := &nfs3.Server{FS: s.fs, Handles: s.handles, Verifier: func() uint64 { return writeVerifier },
		Log: slog.New(slog.DiscardHandler)}
	s.rpc = &rpc.Server{
		Programs: map[uint32]rpc.Service{
			nfsv3.NFS_PROGRAM_PROGRAM_NUMBER:   nfsv3.NewNfsProgramService(srv),
			mount.MOUNT_PROGRAM_PROGRAM_NUMBER: nfsmount.V3Only(mount.NewMountProgramService(&nfsmount.Service{FS: s.fs, Handles: s.handles})),
			portmap.Program:                    portmap.Service(maps),
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	go func() { _ = s.rpc.Serve(ln) }()
	t.Cleanup(s.rpc.Close)
	return s
}

// ctx returns a context that ends with the test or after 30 s.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func (s *server) setExport(vol string, e fsstate.Export) {
	s.t.Helper()
	if _, err := s.fs.SetExport(ctx(s.t), vol, e); err != nil {
		s.t.Fatalf("set export of %s: %v", vol, err)
	}
}

// volume returns the current record of a volume.
func (s *server) volume(name string) fsstate.Volume {
	s.t.Helper()
	v, err := s.repl.Store().VolumeByName(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// dial connects a client with opts.
func (s *server) dial(opts nfsclient.Options) *nfsclient.Client {
	s.t.Helper()
	c, err := nfsclient.Dial(ctx(s.t), s.addr, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// root mounts /data with c and returns its root handle.
func (s *server) root(c *nfsclient.Client) []byte {
	s.t.Helper()
	h, st, err := c.Mount(ctx(s.t), "/data")
	if err != nil || st != mount.MNT3_OK {
		s.t.Fatalf("MNT /data: status %d, %v", st, err)
	}
	return h
}

// rootClient dials as uid 0 and mounts /data.
func (s *server) rootClient() (*nfsclient.Client, []byte) {
	c := s.dial(nfsclient.Options{Machine: "conformance"})
	return c, s.root(c)
}

// mkdirAs makes a directory in the root of volume vol directly in the state
// (privileged), owned by uid:gid with mode, and returns its handle.
func (s *server) mkdirAs(vol fsstate.Volume, name string, uid, gid, mode uint32) []byte {
	s.t.Helper()
	res, err := s.fs.Create(ctx(s.t), nil, fsapi.CreateArgs{Vol: vol.ID, Dir: fsstate.RootIno, Name: name,
		Type: fsstate.TypeDir, Mode: mode, UID: uid, GID: gid})
	if err != nil {
		s.t.Fatalf("mkdir %s: %v", name, err)
	}
	return s.handles.Encode(fh.Handle{Vol: vol.ID, Ino: res.Attr.Ino, Gen: res.Attr.Gen})
}

// fileAs makes a regular file in directory dir (a handle) directly in the
// state, owned by uid:gid with mode and content data.
func (s *server) fileAs(dir []byte, name string, uid, gid, mode uint32, data []byte) []byte {
	s.t.Helper()
	d, err := s.handles.Decode(dir)
	if err != nil {
		s.t.Fatal(err)
	}
	res, err := s.fs.Create(ctx(s.t), nil, fsapi.CreateArgs{Vol: d.Vol, Dir: d.Ino, Name: name,
		Type: fsstate.TypeRegular, Mode: mode, UID: uid, GID: gid})
	if err != nil {
		s.t.Fatalf("create %s: %v", name, err)
	}
	if len(data) > 0 {
		if _, err := s.fs.Write(ctx(s.t), nil, d.Vol, res.Attr.Ino, 0, data); err != nil {
			s.t.Fatalf("write %s: %v", name, err)
		}
	}
	return s.handles.Encode(fh.Handle{Vol: d.Vol, Ino: res.Attr.Ino, Gen: res.Attr.Gen})
}

// wantStatus fails the test unless a call returned status want.
func wantStatus(t *testing.T, what string, got nfsv3.Nfsstat3, err error, want nfsv3.Nfsstat3) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: status %s, want %s", what, statusName(got), statusName(want))
	}
}

// must fails the test unless a call succeeded.
func must(t *testing.T, what string, got nfsv3.Nfsstat3, err error) {
	t.Helper()
	wantStatus(t, what, got, err, nfsv3.NFS3_OK)
}

var statusNames = map[nfsv3.Nfsstat3]string{
	nfsv3.NFS3_OK: "NFS3_OK", nfsv3.NFS3ERR_PERM: "PERM", nfsv3.NFS3ERR_NOENT: "NOENT", nfsv3.NFS3ERR_IO: "IO",
	nfsv3.NFS3ERR_NXIO: "NXIO", nfsv3.NFS3ERR_ACCES: "ACCES", nfsv3.NFS3ERR_EXIST: "EXIST", nfsv3.NFS3ERR_XDEV: "XDEV",
	nfsv3.NFS3ERR_NODEV: "NODEV", nfsv3.NFS3ERR_NOTDIR: "NOTDIR", nfsv3.NFS3ERR_ISDIR: "ISDIR", nfsv3.NFS3ERR_INVAL: "INVAL",
	nfsv3.NFS3ERR_FBIG: "FBIG", nfsv3.NFS3ERR_NOSPC: "NOSPC", nfsv3.NFS3ERR_ROFS: "ROFS", nfsv3.NFS3ERR_MLINK: "MLINK",
	nfsv3.NFS3ERR_NAMETOOLONG: "NAMETOOLONG", nfsv3.NFS3ERR_NOTEMPTY: "NOTEMPTY", nfsv3.NFS3ERR_DQUOT: "DQUOT",
	nfsv3.NFS3ERR_STALE: "STALE", nfsv3.NFS3ERR_REMOTE: "REMOTE", nfsv3.NFS3ERR_BADHANDLE: "BADHANDLE",
	nfsv3.NFS3ERR_NOT_SYNC: "NOT_SYNC", nfsv3.NFS3ERR_BAD_COOKIE: "BAD_COOKIE", nfsv3.NFS3ERR_NOTSUPP: "NOTSUPP",
	nfsv3.NFS3ERR_TOOSMALL: "TOOSMALL", nfsv3.NFS3ERR_SERVERFAULT: "SERVERFAULT", nfsv3.NFS3ERR_BADTYPE: "BADTYPE",
	nfsv3.NFS3ERR_JUKEBOX: "JUKEBOX",
}

func statusName(s nfsv3.Nfsstat3) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %d", s)
}
