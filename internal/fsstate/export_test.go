package fsstate

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestDefaultExportOnCreate(t *testing.T) {
	h := newHarness(t)
	v := h.volume("data", 1<<30)
	want := Export{Clients: []string{"127.0.0.0/8", "::1/128"}, Squash: SquashRoot, AnonUID: 65534, AnonGID: 65534}
	if !reflect.DeepEqual(v.Export, want) {
		t.Fatalf("created with export %+v, want %+v", v.Export, want)
	}
	if !reflect.DeepEqual(DefaultExport(), want) {
		t.Fatalf("DefaultExport() = %+v", DefaultExport())
	}
	got, err := h.s.VolumeByName("data")
	if err != nil || !reflect.DeepEqual(got.Export, want) {
		t.Fatalf("VolumeByName = %+v, %v", got, err)
	}
	// Each call returns a list of its own.
	d := DefaultExport()
	d.Clients[0] = "changed"
	if DefaultExport().Clients[0] != "127.0.0.0/8" {
		t.Fatal("DefaultExport shares its client list")
	}
}

func TestSetExport(t *testing.T) {
	tests := []struct {
		name    string
		export  Export
		clients []string // as stored
	}{
		{"ipv4 networks", Export{Clients: []string{"10.0.0.0/8", "192.168.1.0/24", "127.0.0.1/32"}, AnonUID: 65534, AnonGID: 65534},
			[]string{"10.0.0.0/8", "192.168.1.0/24", "127.0.0.1/32"}},
		{"ipv6 and mixed, read-only", Export{Clients: []string{"::1/128", "fd00::/8", "10.0.0.0/8"}, ReadOnly: true, AnonUID: 1, AnonGID: 2},
			[]string{"::1/128", "fd00::/8", "10.0.0.0/8"}},
		{"no_root_squash", Export{Clients: []string{"0.0.0.0/0", "::/0"}, Squash: SquashNone, AnonUID: 65534, AnonGID: 65534},
			[]string{"0.0.0.0/0", "::/0"}},
		{"all_squash with own anon ids", Export{Clients: []string{"10.1.0.0/16"}, Squash: SquashAll, AnonUID: 1000, AnonGID: 100},
			[]string{"10.1.0.0/16"}},
		{"host bits cleared", Export{Clients: []string{"10.1.2.3/8", "fd00::1/64"}},
			[]string{"10.0.0.0/8", "fd00::/64"}},
		{"ipv4-mapped written as ipv4", Export{Clients: []string{"::ffff:10.0.0.0/104", "::ffff:1.2.3.4/128"}},
			[]string{"10.0.0.0/8", "1.2.3.4/32"}},
		{"empty list: nobody may mount", Export{Clients: []string{}, ReadOnly: true}, nil},
		{"nil list", Export{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			v := h.volume("data", 1<<30)
			h.volume("other", 1<<20)
			want := tc.export
			want.Clients = tc.clients
			if err := tc.export.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			e := tc.export
			r := h.ok(&Command{Op: OpSetExport, VolName: "data", Export: &e})
			if !reflect.DeepEqual(r.Volume.Export, want) {
				t.Fatalf("Result.Volume.Export\n got %+v\nwant %+v", r.Volume.Export, want)
			}
			wantVol := v
			wantVol.Export = want
			if !reflect.DeepEqual(r.Volume, wantVol) {
				t.Fatalf("Result.Volume\n got %+v\nwant %+v", r.Volume, wantVol)
			}
			got, err := h.s.VolumeByName("data")
			if err != nil || !reflect.DeepEqual(got, wantVol) {
				t.Fatalf("VolumeByName = %+v, %v; want %+v", got, err, wantVol)
			}
			if got := h.vol(v.ID); !reflect.DeepEqual(got, wantVol) {
				t.Fatalf("VolumeByID = %+v", got)
			}
			// The other volume keeps the default.
			if o, _ := h.s.VolumeByName("other"); !reflect.DeepEqual(o.Export, DefaultExport()) {
				t.Fatalf("other volume's export changed: %+v", o.Export)
			}
			// Rewriting the volume record (usage changes) keeps the export.
			f := h.file(v.ID, RootIno, "f")
			h.write(v.ID, f.Ino, 0, []byte("data"))
			if got := h.vol(v.ID); !reflect.DeepEqual(got.Export, want) || got.Used != 4 {
				t.Fatalf("after a write: %+v", got)
			}
		})
	}
}

func TestSetExportErrors(t *testing.T) {
	h := newHarness(t)
	h.volume("data", 1<<30)
	exp := func(clients ...string) *Export { return &Export{Clients: clients, AnonUID: 65534, AnonGID: 65534} }
	tests := []struct {
		name string
		cmd  Command
		want syscall.Errno
	}{
		{"address without length", Command{VolName: "data", Export: exp("10.0.0.1")}, syscall.EINVAL},
		{"length too long", Command{VolName: "data", Export: exp("10.0.0.0/33")}, syscall.EINVAL},
		{"ipv6 length too long", Command{VolName: "data", Export: exp("::1/129")}, syscall.EINVAL},
		{"host name", Command{VolName: "data", Export: exp("client.example.com")}, syscall.EINVAL},
		{"wildcard", Command{VolName: "data", Export: exp("*")}, syscall.EINVAL},
		{"empty string", Command{VolName: "data", Export: exp("")}, syscall.EINVAL},
		{"zone", Command{VolName: "data", Export: exp("fe80::1%eth0/64")}, syscall.EINVAL},
		{"one bad among good", Command{VolName: "data", Export: exp("10.0.0.0/8", "10.0.0.0/x", "::1/128")}, syscall.EINVAL},
		{"too many clients", Command{VolName: "data", Export: exp(make([]string, MaxExportClients+1)...)}, syscall.EINVAL},
		{"unknown squash", Command{VolName: "data", Export: &Export{Squash: SquashAll + 1}}, syscall.EINVAL},
		{"no export", Command{VolName: "data"}, syscall.EINVAL},
		{"no such volume", Command{VolName: "nope", Export: exp("10.0.0.0/8")}, syscall.ENOENT},
		{"unprivileged", Command{VolName: "data", Export: exp("10.0.0.0/8"), Cred: &Cred{UID: 1000}}, syscall.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cmd
			c.Op = OpSetExport
			h.fail(&c, tc.want)
			if c.Export != nil && tc.want == syscall.EINVAL {
				if err := c.Export.Validate(); err == nil {
					t.Fatal("Validate accepts it")
				}
			}
		})
	}
	if v, _ := h.s.VolumeByName("data"); !reflect.DeepEqual(v.Export, DefaultExport()) {
		t.Fatalf("export changed: %+v", v.Export)
	}
	// The longest allowed list is fine.
	many := make([]string, MaxExportClients)
	for i := range many {
		many[i] = "10.0.0.0/8"
	}
	h.ok(&Command{Op: OpSetExport, VolName: "data", Export: &Export{Clients: many}})
}

func TestExportSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	e := Export{Clients: []string{"10.0.0.0/8"}, ReadOnly: true, Squash: SquashAll, AnonUID: 7, AnonGID: 8}
	s.ApplyBatch(entriesOf([]*Command{
		{Op: OpCreateVolume, Time: 1, VolName: "data", SizeLimit: 1 << 30},
		{Op: OpSetExport, Time: 2, VolName: "data", Export: &e},
	}, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	vols, err := s.Volumes()
	if err != nil || len(vols) != 1 || !reflect.DeepEqual(vols[0].Export, e) {
		t.Fatalf("Volumes = %+v, %v", vols, err)
	}
}

func TestSquashString(t *testing.T) {
	for s, want := range map[Squash]string{
		SquashRoot: "root_squash", SquashNone: "no_root_squash", SquashAll: "all_squash", 7: "squash(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("Squash(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestExportAllows(t *testing.T) {
	def := DefaultExport()
	lan := Export{Clients: []string{"10.0.0.0/8", "192.168.1.0/24", "fd00:1::/32", "fe80::/10"}}
	tests := []struct {
		name string
		e    Export
		addr string
		want bool
	}{
		{"v4 loopback, default", def, "127.0.0.1", true},
		{"v4 loopback net, default", def, "127.9.9.9", true},
		{"v6 loopback, default", def, "::1", true},
		{"v4-mapped loopback, default", def, "::ffff:127.0.0.1", true},
		{"v4 remote, default", def, "10.0.0.1", false},
		{"v6 remote, default", def, "2001:db8::1", false},
		{"v4 in /8", lan, "10.200.3.4", true},
		{"v4 in /24", lan, "192.168.1.77", true},
		{"v4 outside /24", lan, "192.168.2.1", false},
		{"v4-mapped in /8", lan, "::ffff:10.1.2.3", true},
		{"v4-mapped outside", lan, "::ffff:11.1.2.3", false},
		{"v6 in /32", lan, "fd00:1:abcd::5", true},
		{"v6 outside /32", lan, "fd00:2::5", false},
		{"v6 with zone", lan, "fe80::1%eth0", true},
		{"v4 loopback not in lan", lan, "127.0.0.1", false},
		{"empty list", Export{}, "127.0.0.1", false},
		{"all v4 does not cover v6", Export{Clients: []string{"0.0.0.0/0"}}, "::1", false},
		{"all v4 covers v4-mapped", Export{Clients: []string{"0.0.0.0/0"}}, "::ffff:8.8.8.8", true},
		{"all v6 does not cover v4", Export{Clients: []string{"::/0"}}, "8.8.8.8", false},
		{"non-canonical entry", Export{Clients: []string{"10.1.2.3/8"}}, "10.9.9.9", true},
		{"v4-mapped entry", Export{Clients: []string{"::ffff:10.0.0.0/104"}}, "10.9.9.9", true},
		{"bad entry ignored", Export{Clients: []string{"junk", "10.0.0.0/8"}}, "10.9.9.9", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			if got := tc.e.Allows(a); got != tc.want {
				t.Fatalf("Allows(%s) = %v, want %v", a, got, tc.want)
			}
		})
	}
	if def.Allows(netip.Addr{}) {
		t.Fatal("the zero Addr is allowed")
	}
}

func TestVolumeRecordVersions(t *testing.T) {
	// A version 1 record (no export) decodes with the default export.
	v1 := []byte{volumeRecV1}
	v1 = be(v1, 3, 1<<30, 4096, 2, 42, 9, 11)
	v1 = append(v1, 4)
	v1 = append(v1, "data"...)
	v, err := decodeVolume(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := &volume{Volume: Volume{ID: 3, Name: "data", SizeLimit: 1 << 30, Used: 4096, Inodes: 2, Created: 42,
		Export: DefaultExport()}, NextIno: 9, NextGen: 11}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("v1 record\n got %+v\nwant %+v", v, want)
	}
	// The current version round-trips.
	want.Export = Export{Clients: []string{"10.0.0.0/8"}, ReadOnly: true, Squash: SquashNone, AnonUID: 1, AnonGID: 1 << 31}
	enc := want.encode()
	if enc[0] != volumeRecV {
		t.Fatalf("version %d", enc[0])
	}
	if got, err := decodeVolume(enc); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	bad := map[string][]byte{
		"v1 with trailing bytes": append(append([]byte{}, v1...), 0),
		"v2 without export":      append([]byte{volumeRecV}, v1[1:]...),
		"v2 truncated":           enc[:len(enc)-1],
		"v2 trailing":            append(append([]byte{}, enc...), 0),
		"unknown version":        append([]byte{9}, enc[1:]...),
		"name past the end":      binary.BigEndian.AppendUint64([]byte{volumeRecV}, 1)[:9],
	}
	for name, b := range bad {
		if _, err := decodeVolume(b); !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "fsstate: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
