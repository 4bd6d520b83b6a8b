package conformance

import (
	"fmt"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/nfsclient"
)

// TestSquash creates a file under each export squash mode and credential
// and checks whom the file belongs to.
func TestSquash(t *testing.T) {
	s := startServer(t, serverOpts{})
	pub := s.mkdirAs(s.vol, "pub", 0, 0, 0o777)
	export := func(sq fsstate.Squash, anonUID, anonGID uint32) fsstate.Export {
		e := noRootSquash()
		e.Squash, e.AnonUID, e.AnonGID = sq, anonUID, anonGID
		return e
	}
	cases := []struct {
		name             string
		export           fsstate.Export
		opts             nfsclient.Options
		wantUID, wantGID uint32
	}{
		{"root_squash, root", export(fsstate.SquashRoot, 65534, 65534), nfsclient.Options{UID: 0, GID: 0}, 65534, 65534},
		{"root_squash, root with anonuid 99", export(fsstate.SquashRoot, 99, 98), nfsclient.Options{UID: 0, GID: 0}, 99, 98},
		{"root_squash, uid 1000", export(fsstate.SquashRoot, 65534, 65534), nfsclient.Options{UID: 1000, GID: 100}, 1000, 100},
		{"root_squash, uid 1000 in group 0", export(fsstate.SquashRoot, 65534, 65534), nfsclient.Options{UID: 1000, GID: 0}, 1000, 65534},
		{"no_root_squash, root", export(fsstate.SquashNone, 65534, 65534), nfsclient.Options{UID: 0, GID: 0}, 0, 0},
		{"no_root_squash, uid 1000", export(fsstate.SquashNone, 65534, 65534), nfsclient.Options{UID: 1000, GID: 100}, 1000, 100},
		{"all_squash, uid 1000", export(fsstate.SquashAll, 1234, 4321), nfsclient.Options{UID: 1000, GID: 100}, 1234, 4321},
		{"all_squash, root", export(fsstate.SquashAll, 1234, 4321), nfsclient.Options{UID: 0, GID: 0}, 1234, 4321},
		{"AUTH_NONE, root_squash", export(fsstate.SquashRoot, 65534, 65534), nfsclient.Options{AuthNone: true}, 65534, 65534},
		{"AUTH_NONE, no_root_squash", export(fsstate.SquashNone, 777, 778), nfsclient.Options{AuthNone: true}, 777, 778},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.setExport("data", tc.export)
			c := s.dial(tc.opts)
			name := fmt.Sprintf("f%d", i)
			cr, st, err := c.Create(ctx(t), pub, name, nfsclient.Guarded(nfsclient.Set{Mode: new(uint32(0o644))}))
			must(t, "CREATE pub/"+name, st, err)
			a, ok := nfsclient.Attr(cr.ObjAttributes)
			if !ok || a.Uid != tc.wantUID || a.Gid != tc.wantGID {
				t.Fatalf("CREATE: owner %d:%d, want %d:%d", a.Uid, a.Gid, tc.wantUID, tc.wantGID)
			}
			mk, st, err := c.Mkdir(ctx(t), pub, name+"d", nfsclient.Set{})
			must(t, "MKDIR pub/"+name+"d", st, err)
			if a, _ := nfsclient.Attr(mk.ObjAttributes); a.Uid != tc.wantUID || a.Gid != tc.wantGID {
				t.Fatalf("MKDIR: owner %d:%d, want %d:%d", a.Uid, a.Gid, tc.wantUID, tc.wantGID)
			}
		})
	}

	t.Run("squashed root may not write into root's 0755 directory", func(t *testing.T) {
		s.setExport("data", export(fsstate.SquashRoot, 65534, 65534))
		c := s.dial(nfsclient.Options{})
		root := s.root(c)
		_, st, err := c.Create(ctx(t), root, "x", nfsclient.Unchecked(nfsclient.Set{}))
		wantStatus(t, "CREATE in / as squashed root", st, err, nfsv3.NFS3ERR_ACCES)
	})
}

// TestExportClients: a client outside the export's networks cannot mount
// it (MNT3ERR_ACCES), and a handle it already has gets NFS3ERR_ACCES.
func TestExportClients(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	f := s.fileAs(root, "f", 0, 0, 0o644, []byte("data"))
	cases := []struct {
		clients []string
		allowed bool
	}{
		{[]string{"10.0.0.0/8"}, false},
		{[]string{"::1/128"}, false},
		{nil, false},
		{[]string{"192.168.0.0/16", "127.0.0.2/32"}, false},
		{[]string{"10.0.0.0/8", "127.0.0.1/32"}, true},
		{[]string{"::ffff:127.0.0.0/104"}, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.clients), func(t *testing.T) {
			e := noRootSquash()
			e.Clients = tc.clients
			s.setExport("data", e)
			cx := ctx(t)
			h, mst, err := c.Mount(cx, "/data")
			wantMnt, wantNFS := mount.MNT3ERR_ACCES, nfsv3.NFS3ERR_ACCES
			if tc.allowed {
				wantMnt, wantNFS = mount.MNT3_OK, nfsv3.NFS3_OK
			}
			if err != nil || mst != wantMnt {
				t.Fatalf("MNT /data: status %d %v, want %d", mst, err, wantMnt)
			}
			if !tc.allowed && h != nil {
				t.Fatalf("MNT refused but returned a handle")
			}
			_, st, err := c.Getattr(cx, root)
			wantStatus(t, "GETATTR /", st, err, wantNFS)
			_, st, err = c.Read(cx, f, 0, 10)
			wantStatus(t, "READ f", st, err, wantNFS)
			_, st, err = c.ReaddirPlus(cx, root, 0)
			wantStatus(t, "READDIRPLUS /", st, err, wantNFS)
			_, st, err = c.Write(cx, f, 0, []byte("x"))
			wantStatus(t, "WRITE f", st, err, wantNFS)
			_, st, err = c.Fsstat(cx, root)
			wantStatus(t, "FSSTAT", st, err, wantNFS)
		})
	}
}

// TestReadOnlyExport: every change is NFS3ERR_ROFS; reads work; ACCESS
// grants no write rights.
func TestReadOnlyExport(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	f := s.fileAs(root, "f", 0, 0, 0o666, []byte("data"))
	s.mkdirIn(c, root, "d")
	e := noRootSquash()
	e.ReadOnly = true
	s.setExport("data", e)
	cx := ctx(t)
	status := func(_ any, st nfsv3.Nfsstat3, err error) (nfsv3.Nfsstat3, error) { return st, err }
	changes := map[string]func() (nfsv3.Nfsstat3, error){
		"SETATTR": func() (nfsv3.Nfsstat3, error) {
			return status(c.Setattr(cx, f, nfsclient.Set{Mode: new(uint32(0o600))}, nil))
		},
		"WRITE": func() (nfsv3.Nfsstat3, error) { return status(c.Write(cx, f, 0, []byte("x"))) },
		"CREATE": func() (nfsv3.Nfsstat3, error) {
			return status(c.Create(cx, root, "n", nfsclient.Unchecked(nfsclient.Set{})))
		},
		"MKDIR":   func() (nfsv3.Nfsstat3, error) { return status(c.Mkdir(cx, root, "n", nfsclient.Set{})) },
		"SYMLINK": func() (nfsv3.Nfsstat3, error) { return status(c.Symlink(cx, root, "n", "f", nfsclient.Set{})) },
		"MKNOD": func() (nfsv3.Nfsstat3, error) {
			return status(c.Mknod(cx, root, "n", &nfsv3.Mknoddata3_NF3FIFO{PipeAttributes: nfsclient.Set{}.Sattr3()}))
		},
		"REMOVE": func() (nfsv3.Nfsstat3, error) { return status(c.Remove(cx, root, "f")) },
		"RMDIR":  func() (nfsv3.Nfsstat3, error) { return status(c.Rmdir(cx, root, "d")) },
		"RENAME": func() (nfsv3.Nfsstat3, error) { return status(c.Rename(cx, root, "f", root, "g")) },
		"LINK":   func() (nfsv3.Nfsstat3, error) { return status(c.Link(cx, f, root, "g")) },
	}
	for name, run := range changes {
		st, err := run()
		wantStatus(t, name+" on a read-only export", st, err, nfsv3.NFS3ERR_ROFS)
	}
	if d, err := c.ReadFile(cx, f, 0, 100); err != nil || string(d) != "data" {
		t.Fatalf("READ on a read-only export: %q %v", d, err)
	}
	acc, st, err := c.Access(cx, f, nfsv3.ACCESS3_READ|nfsv3.ACCESS3_MODIFY|nfsv3.ACCESS3_EXTEND)
	must(t, "ACCESS", st, err)
	if acc != nfsv3.ACCESS3_READ {
		t.Fatalf("ACCESS on a read-only export granted %#x, want READ only", acc)
	}
}

// TestPermissions checks uid/gid/mode permission checks as a Linux server
// makes them.
func TestPermissions(t *testing.T) {
	s := startServer(t, serverOpts{})
	owned := s.mkdirAs(s.vol, "owned", 2000, 2000, 0o755)
	private := s.mkdirAs(s.vol, "private", 2000, 2000, 0o700)
	s.fileAs(owned, "file", 2000, 2000, 0o644, []byte("data"))
	secret := s.fileAs(owned, "secret", 2000, 2000, 0o600, []byte("secret"))
	group := s.fileAs(owned, "group", 2000, 3000, 0o640, []byte("group"))
	file := s.lookupPriv(owned, "file")

	other := s.dial(nfsclient.Options{UID: 1000, GID: 1000})
	member := s.dial(nfsclient.Options{UID: 1000, GID: 1000, GIDs: []uint32{5, 3000}})
	owner := s.dial(nfsclient.Options{UID: 2000, GID: 2000})
	root := s.root(other)
	cx := ctx(t)
	status := func(_ any, st nfsv3.Nfsstat3, err error) (nfsv3.Nfsstat3, error) { return st, err }
	cases := []struct {
		name string
		run  func() (nfsv3.Nfsstat3, error)
		want nfsv3.Nfsstat3
	}{
		{"CREATE in another user's 0755 directory", func() (nfsv3.Nfsstat3, error) {
			return status(other.Create(cx, owned, "n", nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_ACCES},
		{"MKDIR in another user's 0755 directory", func() (nfsv3.Nfsstat3, error) { return status(other.Mkdir(cx, owned, "n", nfsclient.Set{})) }, nfsv3.NFS3ERR_ACCES},
		{"SYMLINK in another user's 0755 directory", func() (nfsv3.Nfsstat3, error) {
			return status(other.Symlink(cx, owned, "n", "file", nfsclient.Set{}))
		}, nfsv3.NFS3ERR_ACCES},
		{"REMOVE from another user's 0755 directory", func() (nfsv3.Nfsstat3, error) { return status(other.Remove(cx, owned, "file")) }, nfsv3.NFS3ERR_ACCES},
		{"RENAME within another user's 0755 directory", func() (nfsv3.Nfsstat3, error) {
			return status(other.Rename(cx, owned, "file", owned, "moved"))
		}, nfsv3.NFS3ERR_ACCES},
		{"LINK into another user's 0755 directory", func() (nfsv3.Nfsstat3, error) { return status(other.Link(cx, file, owned, "l")) }, nfsv3.NFS3ERR_ACCES},
		{"CREATE in root's 0755 root directory", func() (nfsv3.Nfsstat3, error) {
			return status(other.Create(cx, root, "n", nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3ERR_ACCES},
		{"READ of another user's 0600 file", func() (nfsv3.Nfsstat3, error) { return status(other.Read(cx, secret, 0, 10)) }, nfsv3.NFS3ERR_ACCES},
		{"WRITE to another user's 0644 file", func() (nfsv3.Nfsstat3, error) { return status(other.Write(cx, file, 0, []byte("x"))) }, nfsv3.NFS3ERR_ACCES},
		{"SETATTR mode of another user's file", func() (nfsv3.Nfsstat3, error) {
			return status(other.Setattr(cx, file, nfsclient.Set{Mode: new(uint32(0o666))}, nil))
		}, nfsv3.NFS3ERR_PERM},
		{"LOOKUP in another user's 0700 directory", func() (nfsv3.Nfsstat3, error) { return status(other.Lookup(cx, private, "x")) }, nfsv3.NFS3ERR_ACCES},
		{"READDIR of another user's 0700 directory", func() (nfsv3.Nfsstat3, error) {
			return status(other.Readdir(cx, private, 0, [8]byte{}, 4096))
		}, nfsv3.NFS3ERR_ACCES},
		{"READ of a 0640 file outside its group", func() (nfsv3.Nfsstat3, error) { return status(other.Read(cx, group, 0, 10)) }, nfsv3.NFS3ERR_ACCES},
		{"READ of a 0640 file by a supplementary group member", func() (nfsv3.Nfsstat3, error) { return status(member.Read(cx, group, 0, 10)) }, nfsv3.NFS3_OK},
		{"READ of a 0644 file by others", func() (nfsv3.Nfsstat3, error) { return status(other.Read(cx, file, 0, 10)) }, nfsv3.NFS3_OK},
		{"CREATE in one's own directory", func() (nfsv3.Nfsstat3, error) {
			return status(owner.Create(cx, owned, "mine", nfsclient.Unchecked(nfsclient.Set{})))
		}, nfsv3.NFS3_OK},
		{"READ of one's own 0600 file", func() (nfsv3.Nfsstat3, error) { return status(owner.Read(cx, secret, 0, 10)) }, nfsv3.NFS3_OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.run()
			wantStatus(t, tc.name, st, err, tc.want)
		})
	}
	acc, st, err := other.Access(cx, owned, nfsv3.ACCESS3_READ|nfsv3.ACCESS3_LOOKUP|nfsv3.ACCESS3_MODIFY|nfsv3.ACCESS3_EXTEND|nfsv3.ACCESS3_DELETE)
	must(t, "ACCESS", st, err)
	if acc != nfsv3.ACCESS3_READ|nfsv3.ACCESS3_LOOKUP {
		t.Errorf("ACCESS of another user's 0755 directory: %#x, want READ|LOOKUP", acc)
	}
}

// lookupPriv returns the handle of dir/name read directly from the state.
func (s *server) lookupPriv(dir []byte, name string) []byte {
	s.t.Helper()
	d, err := s.handles.Decode(dir)
	if err != nil {
		s.t.Fatal(err)
	}
	a, err := s.repl.Store().Lookup(d.Vol, d.Ino, name)
	if err != nil {
		s.t.Fatalf("lookup %s: %v", name, err)
	}
	return s.handles.Encode(fh.Handle{Vol: d.Vol, Ino: a.Ino, Gen: a.Gen})
}
