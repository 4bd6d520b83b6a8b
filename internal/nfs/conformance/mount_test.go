package conformance

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"

	"keel/internal/fsstate"
	"keel/internal/nfs/nfsclient"
)

// TestPortmapper: GETPORT finds NFS v3 and MOUNT v3 over TCP on the
// service's port, unknown programs and versions get 0, DUMP lists them.
func TestPortmapper(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := s.dial(nfsclient.Options{})
	cx := ctx(t)
	if err := c.Call(cx, nfsclient.PortmapProgram, nfsclient.PortmapVersion, nfsclient.PortmapProcNull, nil, nil); err != nil {
		t.Fatalf("portmapper NULL: %v", err)
	}
	cases := []struct {
		name             string
		prog, vers, prot uint32
		want             uint32
	}{
		{"NFS v3 TCP", nfsclient.NFSProgram, 3, nfsclient.IPProtoTCP, s.port},
		{"MOUNT v3 TCP", nfsclient.MountProgram, 3, nfsclient.IPProtoTCP, s.port},
		{"MOUNT v1 TCP", nfsclient.MountProgram, 1, nfsclient.IPProtoTCP, s.port},
		{"portmapper v2 TCP", nfsclient.PortmapProgram, 2, nfsclient.IPProtoTCP, s.port},
		{"NFS v3 UDP", nfsclient.NFSProgram, 3, nfsclient.IPProtoUDP, 0},
		{"NFS v4 TCP", nfsclient.NFSProgram, 4, nfsclient.IPProtoTCP, 0},
		{"NLM", 100021, 4, nfsclient.IPProtoTCP, 0},
	}
	for _, tc := range cases {
		port, err := c.GetPort(cx, tc.prog, tc.vers, tc.prot)
		if err != nil || port != tc.want {
			t.Errorf("GETPORT %s: %d %v, want %d", tc.name, port, err, tc.want)
		}
	}
	maps, err := c.PortmapDump(cx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []nfsclient.Mapping{
		{Prog: nfsclient.NFSProgram, Vers: 3, Prot: nfsclient.IPProtoTCP, Port: s.port},
		{Prog: nfsclient.MountProgram, Vers: 3, Prot: nfsclient.IPProtoTCP, Port: s.port},
	} {
		if !slices.Contains(maps, want) {
			t.Errorf("DUMP %+v lacks %+v", maps, want)
		}
	}
	for _, m := range maps {
		if m.Port != s.port {
			t.Errorf("DUMP: %+v is not on the service's port %d", m, s.port)
		}
	}
}

// TestMountExportList: EXPORT lists each volume at /NAME with its client
// networks, and follows export changes.
func TestMountExportList(t *testing.T) {
	s := startServer(t, serverOpts{})
	if _, err := s.fs.CreateVolume(ctx(t), "other", 1<<20); err != nil {
		t.Fatal(err)
	}
	e := noRootSquash()
	e.Clients = []string{"10.1.0.0/16", "192.168.7.0/24", "::1/128"}
	s.setExport("other", e)
	c := s.dial(nfsclient.Options{})
	ex, err := c.Exports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []nfsclient.Export{
		{Dir: "/data", Groups: []string{"127.0.0.0/8"}},
		{Dir: "/other", Groups: []string{"10.1.0.0/16", "192.168.7.0/24", "::1/128"}},
	}
	if !equalExports(ex, want) {
		t.Fatalf("EXPORT: %+v, want %+v", ex, want)
	}
	e.Clients = nil
	s.setExport("other", e)
	ex, err = c.Exports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want[1].Groups = nil
	if !equalExports(ex, want) {
		t.Fatalf("EXPORT after exporting /other to nobody: %+v, want %+v", ex, want)
	}
}

func equalExports(a, b []nfsclient.Export) bool {
	return slices.EqualFunc(a, b, func(x, y nfsclient.Export) bool { return x.Dir == y.Dir && slices.Equal(x.Groups, y.Groups) })
}

// TestMountMntDumpUmnt: MNT gives the volume's root handle (the same from
// any path spelling and any client), DUMP remembers who mounted what, UMNT
// and UMNTALL forget it.
func TestMountMntDumpUmnt(t *testing.T) {
	s := startServer(t, serverOpts{})
	if _, err := s.fs.CreateVolume(ctx(t), "other", 1<<20); err != nil {
		t.Fatal(err)
	}
	s.setExport("other", noRootSquash())
	a := s.dial(nfsclient.Options{Machine: "host-a"})
	b := s.dial(nfsclient.Options{Machine: "host-b"})
	cx := ctx(t)

	root := s.root(a)
	for _, p := range []string{"data", "/data/", "//data"} {
		h, st, err := b.Mount(cx, p)
		if err != nil || st != mount.MNT3_OK || !bytes.Equal(h, root) {
			t.Errorf("MNT %q: status %d %v, handle %x; want /data's %x", p, st, err, h, root)
		}
	}
	if _, st, err := a.Mount(cx, "/other"); err != nil || st != mount.MNT3_OK {
		t.Fatalf("MNT /other: %d %v", st, err)
	}
	for _, p := range []string{"/nope", "/", "", "/data/sub"} {
		if _, st, err := a.Mount(cx, p); err != nil || st != mount.MNT3ERR_NOENT {
			t.Errorf("MNT %q: status %d %v, want MNT3ERR_NOENT", p, st, err)
		}
	}
	dump := func() []nfsclient.MountEntry {
		t.Helper()
		d, err := a.MountDump(cx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	has := func(d []nfsclient.MountEntry, host, dir string) bool {
		return slices.Contains(d, nfsclient.MountEntry{Host: host, Dir: dir})
	}
	d := dump()
	if !has(d, "host-a", "/data") || !has(d, "host-a", "/other") || !has(d, "host-b", "/data") || len(d) != 3 {
		t.Fatalf("DUMP: %+v", d)
	}
	if err := a.Umnt(cx, "/data"); err != nil {
		t.Fatal(err)
	}
	if d = dump(); has(d, "host-a", "/data") || !has(d, "host-a", "/other") || len(d) != 2 {
		t.Fatalf("DUMP after host-a's UMNT /data: %+v", d)
	}
	if err := b.Umntall(cx); err != nil {
		t.Fatal(err)
	}
	if d = dump(); len(d) != 1 || !has(d, "host-a", "/other") {
		t.Fatalf("DUMP after host-b's UMNTALL: %+v", d)
	}
	// MOUNT version 1 (for NFSv2) is not served: PROG_MISMATCH 3-3.
	if err := a.Call(cx, nfsclient.MountProgram, 1, 0, nil, nil); !errors.Is(err, nfsclient.ErrProgMismatch) {
		t.Fatalf("MOUNT v1 NULL: %v, want PROG_MISMATCH", err)
	}
}

// TestMountRefusesOutsideClients: MNT from outside the export's networks is
// MNT3ERR_ACCES; the export of another volume does not matter.
func TestMountRefusesOutsideClients(t *testing.T) {
	e := fsstate.DefaultExport()
	e.Clients = []string{"10.0.0.0/8"}
	s := startServer(t, serverOpts{export: &e})
	c := s.dial(nfsclient.Options{})
	if h, st, err := c.Mount(ctx(t), "/data"); err != nil || st != mount.MNT3ERR_ACCES || h != nil {
		t.Fatalf("MNT /data from 127.0.0.1 exported to 10.0.0.0/8: status %d %v handle %x", st, err, h)
	}
	if d, err := c.MountDump(ctx(t)); err != nil || len(d) != 0 {
		t.Fatalf("DUMP after a refused MNT: %+v %v", d, err)
	}
}
