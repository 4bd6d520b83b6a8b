package rpc

import (
	"bytes"
	"encoding/binary"
	"io"
	"runtime"
	"testing"
)

// TestReadRecordMemoryFollowsData is the regression test of what the
// hostile-client test found: a record mark promising 2 MiB followed by 100
// bytes made ReadRecord allocate the 2 MiB at once (10,000 such
// connections: 20 GB). What it allocates now follows what arrives.
func TestReadRecordMemoryFollowsData(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, 0x80000000|2<<20), make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := ReadRecord(bytes.NewReader(in), DefaultMaxRecord); err != io.ErrUnexpectedEOF {
			t.Fatalf("a record cut short: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 2*growStep {
		t.Fatalf("ReadRecord allocated %d bytes for 100 bytes of a promised 2 MiB record; want at most %d", per, 2*growStep)
	}
	// A whole large record still reads back exactly.
	big := make([]byte, 1<<20+12345)
	for i := range big {
		big[i] = byte(i * 7)
	}
	rec := append(binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(big))), big...)
	got, err := ReadRecord(bytes.NewReader(rec), DefaultMaxRecord)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 1 MiB record: %d bytes, %v", len(got), err)
	}
}
