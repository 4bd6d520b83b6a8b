package fsstate

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// benchWrap is where the benchmarks' writes wrap around to the start of the
// file, so that long runs also measure overwrites and do not fill the disk.
const benchWrap = 512 << 20

// BenchmarkApplyWrite1MiB applies 1 MiB of (incompressible) file data per op
// as four 256 KiB Write entries in one ApplyBatch, as raft delivers them;
// encoding the entries is included. Past 512 MiB the writes wrap around and
// overwrite the file.
func BenchmarkApplyWrite1MiB(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	idx := uint64(0)
	next := func(c *Command) Entry {
		idx++
		return Entry{Index: idx, Term: 1, Data: c.Encode()}
	}
	setup := s.ApplyBatch([]Entry{
		next(&Command{Op: OpCreateVolume, Time: 1, VolName: "bench", SizeLimit: 1 << 50}),
		next(&Command{Op: OpCreate, Time: 1, Vol: 1, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644}),
	})
	if setup[0].Err != 0 || setup[1].Err != 0 {
		b.Fatalf("setup: %+v", setup)
	}
	data := randomData(MaxEntryData)
	off := uint64(0)
	b.SetBytes(4 * MaxEntryData)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		entries := make([]Entry, 4)
		for j := range entries {
			entries[j] = next(&Command{Op: OpWrite, Time: Time(i + 2), Vol: 1, Ino: 2, Offset: off, Data: data})
			off = (off + MaxEntryData) % benchWrap
		}
		for _, r := range s.ApplyBatch(entries) {
			if r.Err != 0 {
				b.Fatal(r.Err)
			}
		}
	}
	b.StopTimer()
}

// BenchmarkPebbleRawWrite1MiB is the peer of BenchmarkApplyWrite1MiB: the
// same Pebble options and the same 64 KiB chunk keys, written blind in one
// NoSync batch with an applied-index record, without the state machine.
func BenchmarkPebbleRawWrite1MiB(b *testing.B) {
	s := &Store{log: quietLogger(), cache: pebble.NewCache(cacheSize)}
	defer s.cache.Unref()
	db, err := pebble.Open(filepath.Join(b.TempDir(), "raw"), s.options(false))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	chunk := randomData(ChunkSize)
	idx := uint64(0)
	b.SetBytes(4 * MaxEntryData)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := db.NewBatch()
		for range 4 * MaxEntryData / ChunkSize {
			batch.Set(chunkKey(1, 2, idx%(benchWrap/ChunkSize)), chunk, nil)
			idx++
		}
		batch.Set(keyApplied, appliedRec{Index: idx}.encode(), nil)
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// randomData returns incompressible bytes, so that Pebble's block
// compression does not flatter the figures.
func randomData(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// BenchmarkRead1MiB reads a 256 MiB file (written through ApplyBatch and
// flushed out of the memtable) sequentially, 1 MiB per op, as an NFS READ of
// rsize 1 MiB does; the file is larger than the block cache.
func BenchmarkRead1MiB(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	idx := uint64(0)
	next := func(c *Command) Entry {
		idx++
		return Entry{Index: idx, Term: 1, Data: c.Encode()}
	}
	setup := s.ApplyBatch([]Entry{
		next(&Command{Op: OpCreateVolume, Time: 1, VolName: "bench", SizeLimit: 1 << 50}),
		next(&Command{Op: OpCreate, Time: 1, Vol: 1, Dir: RootIno, Name: "f", Type: TypeRegular, Mode: 0o644}),
	})
	if setup[0].Err != 0 || setup[1].Err != 0 {
		b.Fatalf("setup: %+v", setup)
	}
	const size = 256 << 20
	data := randomData(MaxEntryData)
	for off := uint64(0); off < size; off += MaxEntryData {
		if r := s.ApplyBatch([]Entry{next(&Command{Op: OpWrite, Time: 2, Vol: 1, Ino: 2, Offset: off, Data: data})}); r[0].Err != 0 {
			b.Fatal(r[0].Err)
		}
	}
	if db, err := s.acquire(); err != nil {
		b.Fatal(err)
	} else {
		err := db.Flush()
		s.mu.RUnlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	off := uint64(0)
	for i := 0; i < b.N; i++ {
		got, _, err := s.Read(1, 2, off, 1<<20)
		if err != nil || len(got) != 1<<20 {
			b.Fatalf("read at %d: %d bytes, %v", off, len(got), err)
		}
		off = (off + 1<<20) % size
	}
}
