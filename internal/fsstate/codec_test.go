package fsstate

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func sampleCommands() []*Command {
	return []*Command{
		{},
		{Op: OpNoop, Time: -5},
		{Op: OpCreateVolume, Time: 1, VolName: "data", SizeLimit: 1 << 40},
		{Op: OpDeleteVolume, VolName: "x", Force: true, Cred: &Cred{}},
		{Op: OpCreate, Time: math.MaxInt64, Vol: 1, Dir: 1, Name: "a file", Type: TypeRegular,
			Mode: 0o644, UID: 1000, GID: 100, CMode: CreateExclusive, Verf: math.MaxUint64,
			Cred: &Cred{UID: 1000, GID: 100, GIDs: []uint32{4, 24, math.MaxUint32}}},
		{Op: OpCreate, Vol: 2, Dir: 7, Name: "ln", Type: TypeSymlink, Target: strings.Repeat("t", 4096)},
		{Op: OpWrite, Vol: 1, Ino: 9, Offset: 1 << 40, Data: pattern(MaxEntryData, 3)},
		{Op: OpSetAttr, Vol: 1, Ino: 3, Guard: ptr(Time(math.MinInt64)), Set: SetAttr{
			Mode: ptr(uint32(0o7777)), UID: ptr(uint32(0)), GID: ptr(uint32(5)), Size: ptr(uint64(0)),
			Atime: ptr(Time(-1)), Mtime: ptr(Time(0))}},
		{Op: OpRename, Vol: 1, Dir: 1, Name: "a", ToDir: 2, ToName: "b"},
		{Op: OpLink, Vol: 1, Ino: 4, Dir: 5, Name: strings.Repeat("n", 4096)},
		{Op: OpSetExport, VolName: "data", Export: &Export{Clients: []string{"10.0.0.0/8", "::1/128"},
			ReadOnly: true, Squash: SquashAll, AnonUID: 65534, AnonGID: math.MaxUint32}},
		{Op: OpSetExport, VolName: "data", Export: &Export{}},
		{Op: OpCreate, Time: 7, Vol: 1, Dir: 1, Name: "f", Type: TypeRegular, Mode: 0o644,
			Req: &RequestID{Client: "10.1.2.3:811", XID: 0xdeadbeef, Proc: 8,
				ArgHash: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff}}},
		{Op: OpRemove, Vol: 1, Dir: 1, Name: "f", Req: &RequestID{}},
		{Op: OpRename, Vol: 1, Dir: 1, Name: "a", ToDir: 1, ToName: "b",
			Req: &RequestID{Client: strings.Repeat("c", MaxRequestClient), XID: math.MaxUint32, Proc: 14}},
		{Op: OpSnapshotCreate, Time: 9, VolName: "data", SnapName: "before-upgrade"},
		{Op: OpSnapshotDelete, VolName: "data", SnapName: "s", Cred: &Cred{UID: 5}},
		{Op: OpVolumeClone, VolName: "data", SnapName: "s", ToName: "copy", SizeLimit: 1 << 30,
			Req: &RequestID{Client: "admin", XID: 1}},
		{Op: OpVolumeRevert, VolName: "data", SnapName: strings.Repeat("s", 64)},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for i, c := range sampleCommands() {
		b := c.Encode()
		if b[0] != CommandFormat {
			t.Fatalf("#%d: leading byte %d", i, b[0])
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("#%d: round trip\n got %+v\nwant %+v", i, got, c)
		}
		if again := got.Encode(); string(again) != string(b) {
			t.Fatalf("#%d: encoding not deterministic", i)
		}
	}
}

func TestCommandEncodingIsCompact(t *testing.T) {
	c := &Command{Op: OpWrite, Time: 1_700_000_000_000_000_000, Vol: 1, Ino: 12, Offset: 1 << 20,
		Data: make([]byte, 256<<10)}
	if over := len(c.Encode()) - len(c.Data); over > 32 {
		t.Fatalf("write command overhead %d bytes", over)
	}
}

// randomCommand returns a valid command with random fields (empty strings
// and slices nil, as decoding produces them).
func randomCommand(r *rand.Rand) *Command {
	str := func(max int) string {
		if r.IntN(3) == 0 {
			return ""
		}
		b := make([]byte, 1+r.IntN(max))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return string(b)
	}
	u64 := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Uint64()
		}
		return r.Uint64N(1000)
	}
	c := &Command{
		Op: Op(r.IntN(int(lastOp) + 1)), Time: Time(r.Int64() - r.Int64()),
		VolName: str(70), SizeLimit: u64(), Force: r.IntN(2) == 0,
		Vol: u64(), Ino: u64(), Dir: u64(), Name: str(300), ToDir: u64(), ToName: str(300),
		Type: FileType(r.UintN(4)), Mode: uint32(u64()), UID: uint32(u64()), GID: uint32(u64()),
		Target: str(MaxWireName), CMode: CreateMode(r.UintN(3)), Verf: u64(), Offset: u64(),
		SnapName: str(70),
	}
	if r.IntN(2) == 0 {
		c.Cred = &Cred{UID: r.Uint32(), GID: r.Uint32()}
		for range r.IntN(20) {
			c.Cred.GIDs = append(c.Cred.GIDs, r.Uint32())
		}
	}
	if r.IntN(2) == 0 {
		c.Data = pattern(1+r.IntN(MaxEntryData), byte(r.UintN(256)))
	}
	if r.IntN(2) == 0 {
		c.Set.Mode = ptr(r.Uint32())
	}
	if r.IntN(2) == 0 {
		c.Set.UID = ptr(r.Uint32())
	}
	if r.IntN(2) == 0 {
		c.Set.GID = ptr(r.Uint32())
	}
	if r.IntN(2) == 0 {
		c.Set.Size = ptr(r.Uint64())
	}
	if r.IntN(2) == 0 {
		c.Set.Atime = ptr(Time(r.Int64()))
	}
	if r.IntN(2) == 0 {
		c.Set.Mtime = ptr(Time(-r.Int64()))
	}
	if r.IntN(2) == 0 {
		c.Guard = ptr(Time(r.Int64()))
	}
	if r.IntN(2) == 0 {
		e := &Export{ReadOnly: r.IntN(2) == 0, Squash: Squash(r.UintN(256)),
			AnonUID: uint32(u64()), AnonGID: uint32(u64())}
		for range r.IntN(5) {
			e.Clients = append(e.Clients, str(50))
		}
		c.Export = e
	}
	if r.IntN(2) == 0 {
		id := &RequestID{Client: str(MaxRequestClient), XID: r.Uint32(), Proc: r.Uint32N(22)}
		for i := range id.ArgHash {
			id.ArgHash[i] = byte(r.UintN(256))
		}
		c.Req = id
	}
	return c
}

func TestCommandRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		c := randomCommand(r)
		got, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("#%d: round trip\n got %+v\nwant %+v", i, got, c)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	valid := (&Command{Op: OpCreate, Vol: 1, Dir: 1, Name: "x", Type: TypeRegular}).Encode()
	long := (&Command{Op: OpCreate, Name: strings.Repeat("x", MaxWireName+1)}).Encode()
	big := (&Command{Op: OpWrite, Data: make([]byte, MaxEntryData+1)}).Encode()
	reqOnly := (&Command{Req: &RequestID{Client: "c", XID: 1, Proc: 1}}).Encode()
	exportOnly := (&Command{Op: OpSetExport, Export: &Export{Clients: []string{"::1/128"}}}).Encode()
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"one byte", []byte{CommandFormat}},
		{"unknown version", append([]byte{9}, valid[1:]...)},
		{"version zero", append([]byte{0}, valid[1:]...)},
		{"unknown op", []byte{CommandFormat, byte(lastOp) + 1, 0}},
		{"missing bitmap", []byte{CommandFormat, byte(OpNoop)}},
		{"unknown field bit", []byte{CommandFormat, 0, 0x80, 0x80, 0x80, 0x40}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing", append(append([]byte{}, valid...), 0)},
		{"name too long", long},
		{"data too big", big},
		{"target too long", (&Command{Op: OpCreate, Target: strings.Repeat("t", MaxWireTarget+1)}).Encode()},
		{"bad varint", []byte{CommandFormat, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"empty string marked present", []byte{CommandFormat, byte(OpCreate), byte(fVolName >> 0), 0}},
		{"type out of range", []byte{CommandFormat, byte(OpCreate), 0x80, 0x10, 0x80, 0x02}},
		{"huge gid count", []byte{CommandFormat, 0, fCred, 0, 0, 0xff, 0xff, 0x03}},
		{"field bit past the last", binary.AppendUvarint([]byte{CommandFormat, 0}, fAll+1)},
		{"request client too long", (&Command{Req: &RequestID{Client: strings.Repeat("c", MaxRequestClient+1)}}).Encode()},
		{"request hash truncated", reqOnly[:len(reqOnly)-1]},
		{"request xid out of range", binary.AppendUvarint(binary.AppendUvarint(
			binary.AppendUvarint([]byte{CommandFormat, 0}, fReq), 0), 1<<32)},
		{"export readonly flag out of range", binary.AppendUvarint(
			binary.AppendUvarint([]byte{CommandFormat, byte(OpSetExport)}, fExport), 2)},
		{"too many export clients", (&Command{Op: OpSetExport,
			Export: &Export{Clients: make([]string, MaxExportClients+1)}}).Encode()},
		{"export client too long", (&Command{Op: OpSetExport,
			Export: &Export{Clients: []string{strings.Repeat("1", MaxWireName+1)}}}).Encode()},
		{"export truncated", exportOnly[:len(exportOnly)-1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand(tc.b)
			if err == nil {
				t.Fatalf("decoded %+v", c)
			}
			if !errors.Is(err, ErrBadCommand) || !strings.HasPrefix(err.Error(), "fsstate: ") {
				t.Fatalf("error %q does not wrap ErrBadCommand", err)
			}
		})
	}
}

func TestDecodeCommandCopiesData(t *testing.T) {
	b := (&Command{Op: OpWrite, Data: []byte("hello")}).Encode()
	c, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(c.Data) != "hello" {
		t.Fatalf("Data aliases the input: %q", c.Data)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		if len(c.Data) > 1024 {
			c.Data = c.Data[:1024]
		}
		f.Add(c.Encode())
	}
	f.Add([]byte{CommandFormat, byte(OpWrite), 0xff, 0xff, 0xff, 0xff, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		enc := c.Encode()
		c2, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", c2, c)
		}
		if string(c2.Encode()) != string(enc) {
			t.Fatal("encoding not deterministic")
		}
	})
}

// TestDecodeCommandWithoutReq checks that commands encoded before Export and
// Req existed (the bytes below) still decode, with both nil.
func TestDecodeCommandWithoutReq(t *testing.T) {
	c, err := DecodeCommand([]byte("\x01\t\xa0\x0f\x01\x01\x01a\x03\x01b"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Command{Op: OpRename, Vol: 1, Dir: 1, Name: "a", ToDir: 3, ToName: "b"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}
