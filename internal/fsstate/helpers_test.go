package fsstate

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"syscall"
	"testing"
)

// harness feeds commands to a fresh store one entry at a time.
type harness struct {
	t   testing.TB
	s   *Store
	idx uint64
	now Time
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, quietLogger())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	s := openStore(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	return &harness{t: t, s: s, now: 1_700_000_000_000_000_000}
}

// apply applies c as the next log entry (giving it the next time if it has
// none) and returns its result.
func (h *harness) apply(c *Command) Result {
	h.t.Helper()
	if c.Time == 0 {
		h.now += 1000
		c.Time = h.now
	}
	h.idx++
	res := h.s.ApplyBatch([]Entry{{Index: h.idx, Term: 1, Data: c.Encode()}})
	if len(res) != 1 {
		h.t.Fatalf("ApplyBatch returned %d results", len(res))
	}
	return res[0]
}

func (h *harness) ok(c *Command) Result {
	h.t.Helper()
	r := h.apply(c)
	if r.Err != 0 {
		h.t.Fatalf("op %d %q: %v", c.Op, c.Name, r.Err)
	}
	return r
}

func (h *harness) hash() [32]byte {
	h.t.Helper()
	sum, err := h.s.Hash()
	if err != nil {
		h.t.Fatalf("Hash: %v", err)
	}
	return sum
}

// fail applies c, expects errno want, and checks that the state did not
// change at all (only the applied index moved).
func (h *harness) fail(c *Command, want syscall.Errno) {
	h.t.Helper()
	before := h.hash()
	idx0, _, _ := h.s.Applied()
	r := h.apply(c)
	if r.Err != want {
		h.t.Fatalf("op %d %q: got %v (%d), want %v (%d)", c.Op, c.Name, r.Err, int(r.Err), want, int(want))
	}
	if after := h.hash(); after != before {
		h.t.Fatalf("op %d %q failed with %v but changed the state", c.Op, c.Name, r.Err)
	}
	if idx, _, _ := h.s.Applied(); idx != idx0+1 {
		h.t.Fatalf("applied index %d after failed command, want %d", idx, idx0+1)
	}
}

func (h *harness) volume(name string, limit uint64) Volume {
	h.t.Helper()
	return h.ok(&Command{Op: OpCreateVolume, VolName: name, SizeLimit: limit}).Volume
}

func (h *harness) create(vol, dir uint64, name string, typ FileType, mode uint32) Attr {
	h.t.Helper()
	return h.ok(&Command{Op: OpCreate, Vol: vol, Dir: dir, Name: name, Type: typ, Mode: mode}).Attr
}

func (h *harness) file(vol, dir uint64, name string) Attr {
	h.t.Helper()
	return h.create(vol, dir, name, TypeRegular, 0o644)
}

func (h *harness) mkdir(vol, dir uint64, name string) Attr {
	h.t.Helper()
	return h.create(vol, dir, name, TypeDir, 0o755)
}

func (h *harness) write(vol, ino, off uint64, data []byte) Result {
	h.t.Helper()
	return h.ok(&Command{Op: OpWrite, Vol: vol, Ino: ino, Offset: off, Data: data})
}

func (h *harness) attr(vol, ino uint64) Attr {
	h.t.Helper()
	a, err := h.s.GetAttr(vol, ino)
	if err != nil {
		h.t.Fatalf("GetAttr(%d, %d): %v", vol, ino, err)
	}
	return a
}

func (h *harness) lookup(vol, dir uint64, name string) Attr {
	h.t.Helper()
	a, err := h.s.Lookup(vol, dir, name)
	if err != nil {
		h.t.Fatalf("Lookup(%q): %v", name, err)
	}
	return a
}

func (h *harness) noEntry(vol, dir uint64, name string) {
	h.t.Helper()
	if _, err := h.s.Lookup(vol, dir, name); !errors.Is(err, syscall.ENOENT) {
		h.t.Fatalf("Lookup(%q) = %v, want ENOENT", name, err)
	}
}

func (h *harness) read(vol, ino, off uint64, n uint32) ([]byte, bool) {
	h.t.Helper()
	d, eof, err := h.s.Read(vol, ino, off, n)
	if err != nil {
		h.t.Fatalf("Read: %v", err)
	}
	return d, eof
}

func (h *harness) vol(id uint64) Volume {
	h.t.Helper()
	v, err := h.s.VolumeByID(id)
	if err != nil {
		h.t.Fatalf("VolumeByID(%d): %v", id, err)
	}
	return v
}

// names lists a directory completely.
func (h *harness) names(vol, dir uint64) []string {
	h.t.Helper()
	ents, eof, err := h.s.ReadDir(vol, dir, 0, 0)
	if err != nil || !eof {
		h.t.Fatalf("ReadDir: %v eof=%v", err, eof)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
	return b
}

func mustEqualBytes(t testing.TB, got, want []byte, what string) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

func ptr[T any](v T) *T { return &v }

// applyMany applies the commands as consecutive entries of one ApplyBatch.
func (h *harness) applyMany(cmds []*Command) []Result {
	h.t.Helper()
	entries := make([]Entry, len(cmds))
	for i, c := range cmds {
		if c.Time == 0 {
			h.now += 1000
			c.Time = h.now
		}
		h.idx++
		entries[i] = Entry{Index: h.idx, Term: 1, Data: c.Encode()}
	}
	return h.s.ApplyBatch(entries)
}
