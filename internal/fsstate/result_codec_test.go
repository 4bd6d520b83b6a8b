package fsstate

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func sampleAttr(seed uint64) Attr {
	return Attr{Vol: seed, Ino: seed + 1, Gen: seed + 2, Type: TypeRegular, Mode: 0o644, Nlink: 1,
		UID: 1000, GID: 100, Size: seed << 20, Used: seed << 10,
		Atime: Time(seed) * 1e9, Mtime: -Time(seed), Ctime: math.MaxInt64, Parent: 1}
}

func sampleResults() []Result {
	full := Result{
		Err:  ErrNotSync,
		Attr: sampleAttr(1),
		Volume: Volume{ID: 7, Name: "data", SizeLimit: math.MaxUint64, Used: 1, Inodes: 2, Created: -3,
			Export: Export{Clients: []string{"10.0.0.0/8", "::1/128"}, ReadOnly: true, Squash: SquashAll,
				AnonUID: math.MaxUint32, AnonGID: 0}},
		Dir:      WCC{Valid: true, Pre: sampleAttr(2), Post: sampleAttr(3)},
		ToDir:    WCC{Valid: true, Pre: sampleAttr(4), Post: sampleAttr(5)},
		Obj:      WCC{Valid: true, Pre: sampleAttr(6), Post: sampleAttr(7)},
		Skipped:  true,
		Replayed: true,
	}
	return []Result{
		{},
		{Err: syscall.ENOENT},
		{Err: syscall.EEXIST, Dir: WCC{Valid: true, Pre: Attr{Size: 4096, Mtime: 5, Ctime: 6}, Post: sampleAttr(9)}},
		{Attr: sampleAttr(3), Dir: WCC{Valid: true, Post: sampleAttr(4)}},
		{Volume: Volume{ID: 1, Name: "v", SizeLimit: 1 << 30, Inodes: 1, Export: DefaultExport()}},
		{Volume: Volume{ID: 1, Name: "v", Export: Export{ReadOnly: true}}},
		{Obj: WCC{Pre: sampleAttr(1)}}, // Pre without Valid
		{Replayed: true},
		full,
	}
}

func TestResultRoundTrip(t *testing.T) {
	for i, r := range sampleResults() {
		b := EncodeResult(r)
		if b[0] != ResultFormat {
			t.Fatalf("#%d: leading byte %d", i, b[0])
		}
		got, err := DecodeResult(b)
		if err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("#%d: round trip\n got %+v\nwant %+v", i, got, r)
		}
		if again := EncodeResult(got); string(again) != string(b) {
			t.Fatalf("#%d: encoding not deterministic", i)
		}
	}
}

func TestResultEncodingIsCompact(t *testing.T) {
	if n := len(EncodeResult(Result{Err: syscall.ENOENT})); n > 4 {
		t.Fatalf("an error result takes %d bytes", n)
	}
}

func randomAttr(r *rand.Rand) Attr {
	if r.IntN(3) == 0 {
		return Attr{}
	}
	return Attr{Vol: r.Uint64(), Ino: r.Uint64N(1000), Gen: r.Uint64(), Type: FileType(r.UintN(256)),
		Mode: r.Uint32(), Nlink: r.Uint32(), UID: r.Uint32(), GID: r.Uint32(), Size: r.Uint64(),
		Used: r.Uint64(), Atime: Time(r.Int64() - r.Int64()), Mtime: Time(r.Int64()), Ctime: Time(-r.Int64()),
		Parent: r.Uint64()}
}

func TestResultRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		res := Result{
			Err: syscall.Errno(r.Uint32()), Attr: randomAttr(r),
			Dir:     WCC{Valid: r.IntN(2) == 0, Pre: randomAttr(r), Post: randomAttr(r)},
			ToDir:   WCC{Valid: r.IntN(2) == 0, Pre: randomAttr(r), Post: randomAttr(r)},
			Obj:     WCC{Valid: r.IntN(2) == 0, Pre: randomAttr(r), Post: randomAttr(r)},
			Skipped: r.IntN(2) == 0, Replayed: r.IntN(2) == 0,
		}
		if r.IntN(2) == 0 {
			res.Volume = Volume{ID: r.Uint64(), Name: strings.Repeat("n", r.IntN(65)), SizeLimit: r.Uint64(),
				Used: r.Uint64(), Inodes: r.Uint64(), Created: Time(r.Int64()),
				Export: Export{ReadOnly: r.IntN(2) == 0, Squash: Squash(r.UintN(3)), AnonUID: r.Uint32(), AnonGID: r.Uint32()}}
			for range r.IntN(4) {
				res.Volume.Export.Clients = append(res.Volume.Export.Clients, strings.Repeat("1", r.IntN(40)))
			}
		}
		got, err := DecodeResult(EncodeResult(res))
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if !reflect.DeepEqual(got, res) {
			t.Fatalf("#%d: round trip\n got %+v\nwant %+v", i, got, res)
		}
	}
}

func TestDecodeResultErrors(t *testing.T) {
	full := EncodeResult(sampleResults()[len(sampleResults())-1])
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"version only", []byte{ResultFormat}},
		{"unknown version", append([]byte{9}, full[1:]...)},
		{"unknown bit", binary.AppendUvarint([]byte{ResultFormat}, rAll+1)},
		{"trailing", append(append([]byte{}, full...), 0)},
		{"errno out of range", binary.AppendUvarint([]byte{ResultFormat, 0}, 1<<32)},
		{"type out of range", append([]byte{ResultFormat, rAttr, 0, 1, 1, 1}, 0x80, 0x02)},
	}
	for n := 1; n < len(full); n++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"truncated", full[:n]})
	}
	for _, tc := range tests {
		if r, err := DecodeResult(tc.b); err == nil {
			t.Fatalf("%s (%x): decoded %+v", tc.name, tc.b, r)
		} else if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "fsstate: ") {
			t.Fatalf("%s: error %q does not wrap ErrCorrupt", tc.name, err)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	for _, r := range sampleResults() {
		f.Add(EncodeResult(r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc := EncodeResult(r)
		r2, err := DecodeResult(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", r2, r)
		}
		if string(EncodeResult(r2)) != string(enc) {
			t.Fatal("encoding not deterministic")
		}
	})
}
