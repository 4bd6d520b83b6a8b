package fsstate

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestReadDirPagingWhileChanging(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "d")
	for i := range 20 {
		h.file(v.ID, d.Ino, fmt.Sprintf("f%02d", i))
	}
	page1, eof, err := h.s.ReadDir(v.ID, d.Ino, 0, 8)
	if err != nil || eof || len(page1) != 8 {
		t.Fatalf("page 1: %d entries eof=%v err=%v", len(page1), eof, err)
	}
	for i, e := range page1 {
		if e.Name != fmt.Sprintf("f%02d", i) || e.Cookie != FirstCookie+uint64(i) || e.Attr.Ino != e.Ino || e.Attr.Type != TypeRegular {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	// Between pages: remove entries already listed and not yet listed, add
	// new ones, rename one not yet listed (it moves to the end).
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "f03"})
	h.ok(&Command{Op: OpRemove, Vol: v.ID, Dir: d.Ino, Name: "f10"})
	h.file(v.ID, d.Ino, "new1")
	h.ok(rename(v.ID, d.Ino, "f12", d.Ino, "f12-renamed"))
	h.file(v.ID, d.Ino, "new2")

	seen := map[string]int{}
	for _, e := range page1 {
		seen[e.Name]++
	}
	after := page1[len(page1)-1].Cookie
	for {
		page, eof, err := h.s.ReadDir(v.ID, d.Ino, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Cookie <= after {
				t.Fatalf("cookie %d after %d", e.Cookie, after)
			}
			after = e.Cookie
			seen[e.Name]++
		}
		if eof {
			break
		}
		if len(page) != 5 {
			t.Fatalf("short page without eof: %d", len(page))
		}
	}
	for i := range 20 {
		name := fmt.Sprintf("f%02d", i)
		switch {
		case i == 10 || i == 12:
			if seen[name] != 0 {
				t.Errorf("%s listed after it was gone", name)
			}
		case seen[name] != 1:
			t.Errorf("%s listed %d times", name, seen[name])
		}
	}
	for _, name := range []string{"new1", "new2", "f12-renamed"} {
		if seen[name] != 1 {
			t.Errorf("%s listed %d times", name, seen[name])
		}
	}
	// Cookies of removed entries are not reused.
	all, _, _ := h.s.ReadDir(v.ID, d.Ino, 0, 0)
	if last := all[len(all)-1]; last.Name != "new2" || last.Cookie != FirstCookie+22 {
		t.Fatalf("last entry %+v", last)
	}
}

func TestReadDirEdges(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	f := h.file(v.ID, RootIno, "f")
	ents, eof, err := h.s.ReadDir(v.ID, RootIno, 0, 1)
	if err != nil || !eof || len(ents) != 1 {
		t.Fatalf("exactly one entry, max 1: %d eof=%v err=%v", len(ents), eof, err)
	}
	ents, eof, err = h.s.ReadDir(v.ID, RootIno, ents[0].Cookie, 10)
	if err != nil || !eof || len(ents) != 0 {
		t.Fatalf("after the last: %d eof=%v err=%v", len(ents), eof, err)
	}
	if _, _, err := h.s.ReadDir(v.ID, RootIno, ^uint64(0), 10); err != nil {
		t.Fatalf("max cookie: %v", err)
	}
	if _, _, err := h.s.ReadDir(v.ID, f.Ino, 0, 10); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("ReadDir(file) = %v", err)
	}
	if _, _, err := h.s.ReadDir(v.ID, 99, 0, 10); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("ReadDir(missing) = %v", err)
	}
}

func TestReadDirTenThousand(t *testing.T) {
	h := newHarness(t)
	v := h.volume("v", 1<<30)
	d := h.mkdir(v.ID, RootIno, "big")
	const n = 10_000
	var cmds []*Command
	for i := range n {
		cmds = append(cmds, &Command{Op: OpCreate, Vol: v.ID, Dir: d.Ino, Name: fmt.Sprintf("entry-%05d", i), Type: TypeRegular, Mode: 0o644})
		if len(cmds) == 1000 {
			for j, r := range h.applyMany(cmds) {
				if r.Err != 0 {
					t.Fatalf("create %d: %v", j, r.Err)
				}
			}
			cmds = nil
		}
	}
	if a := h.attr(v.ID, d.Ino); a.Size != 4096*(1+n/128) {
		t.Fatalf("dir size %d", a.Size)
	}
	seen := make(map[string]bool, n)
	after, pages := uint64(0), 0
	for {
		page, eof, err := h.s.ReadDir(v.ID, d.Ino, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page {
			if seen[e.Name] {
				t.Fatalf("%s listed twice", e.Name)
			}
			seen[e.Name] = true
			after = e.Cookie
		}
		if eof {
			break
		}
	}
	if len(seen) != n || pages != n/100 {
		t.Fatalf("listed %d entries in %d pages", len(seen), pages)
	}
}
