package rpc

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/runtime"
)

// xdrInts writes one integer of each XDR kind with go-xdr's runtime.
func xdrInts(t testing.TB, w io.Writer) {
	for _, err := range []error{
		second(runtime.WriteUnsignedInt(w, 0xdeadbeef)),
		second(runtime.WriteInt(w, -2)),
		second(runtime.WriteUnsignedHyper(w, 0x0102030405060708)),
		second(runtime.WriteHyper(w, -3)),
		second(runtime.WriteBool(w, true)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// checkInts reads back what xdrInts wrote.
func checkInts(t testing.TB, r io.Reader) {
	u, _, err1 := runtime.ReadUnsignedInt(r)
	i, _, err2 := runtime.ReadInt(r)
	uh, _, err3 := runtime.ReadUnsignedHyper(r)
	h, _, err4 := runtime.ReadHyper(r)
	b, _, err5 := runtime.ReadBool(r)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		t.Fatal(err)
	}
	if u != 0xdeadbeef || i != -2 || uh != 0x0102030405060708 || h != -3 || !b {
		t.Fatalf("read back %#x %d %#x %d %v", u, i, uh, h, b)
	}
}

// XDR integers are the same bytes through the results buffer (which lends
// go-xdr its spare room) and a plain writer, read back the same through the
// record reader (which hands out slices) and a plain reader, and cost no
// allocation on the server's reader and writer.
func TestXDRIntegersWithoutAllocations(t *testing.T) {
	var plain bytes.Buffer
	xdrInts(t, struct{ io.Writer }{&plain}) // hides AvailableBuffer
	res := newResults(64)
	xdrInts(t, res)
	got := res.payload()
	if !bytes.Equal(got, plain.Bytes()) || len(got) != 4+4+8+8+4 {
		t.Fatalf("results buffer wrote %x, plain writer %x", got, plain.Bytes())
	}
	checkInts(t, &recordReader{b: got})
	checkInts(t, struct{ io.Reader }{bytes.NewReader(got)}) // hides NextSlice

	// Cut short: the same errors as before, from either reader.
	for _, n := range []int{0, 2} {
		for _, r := range []io.Reader{&recordReader{b: got[:n]}, bytes.NewReader(got[:n])} {
			_, _, err := runtime.ReadUnsignedInt(r)
			want := io.ErrUnexpectedEOF
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Errorf("%d bytes from %T: %v, want %v", n, r, err, want)
			}
		}
	}

	rd := &recordReader{b: got}
	allocs := testing.AllocsPerRun(100, func() {
		res.cur, res.size = res.cur[:replyPrefix], 0
		xdrInts(t, res)
		rd.off = 0
		checkInts(t, rd)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations to write and read five integers, want 0", allocs)
	}
}
