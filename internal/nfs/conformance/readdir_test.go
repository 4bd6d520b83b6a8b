package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/nfsclient"
)

// createEntries makes n empty files named prefix%06d in directory dir (a
// handle) directly in the state, in batches of one state-machine batch each.
func (s *server) createEntries(dir []byte, prefix string, n int) {
	s.t.Helper()
	d, err := s.handles.Decode(dir)
	if err != nil {
		s.t.Fatal(err)
	}
	const batch = 5000
	now := fsstate.Time(time.Now().UnixNano())
	for start := 0; start < n; start += batch {
		var cmds []*fsstate.Command
		for i := start; i < min(start+batch, n); i++ {
			cmds = append(cmds, &fsstate.Command{Op: fsstate.OpCreate, Time: now, Vol: d.Vol, Dir: d.Ino,
				Name: fmt.Sprintf("%s%06d", prefix, i), Type: fsstate.TypeRegular, Mode: 0o644})
		}
		res, err := s.repl.ApplyMany(ctx(s.t), cmds)
		if err != nil {
			s.t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != 0 {
				s.t.Fatalf("create %s: %v", cmds[i].Name, r.Err)
			}
		}
	}
}

// page lists one page of a directory after cookie, returning the names, the
// cookie to go on from and whether the page ends the directory.
type page func(cookie uint64, verf [8]byte) (names []string, next uint64, nextVerf [8]byte, eof bool, err error)

func readdirPages(t *testing.T, c *nfsclient.Client, dir []byte, count uint32) page {
	return func(cookie uint64, verf [8]byte) ([]string, uint64, [8]byte, bool, error) {
		r, st, err := c.Readdir(ctx(t), dir, cookie, verf, count)
		if err == nil && st != nfsv3.NFS3_OK {
			err = fmt.Errorf("READDIR: %s", statusName(st))
		}
		if err != nil {
			return nil, 0, verf, false, err
		}
		var names []string
		for e := r.Reply.Entries; e != nil; e = e.Nextentry {
			names, cookie = append(names, e.Name), e.Cookie
		}
		return names, cookie, r.Cookieverf, r.Reply.Eof, nil
	}
}

func readdirplusPages(t *testing.T, c *nfsclient.Client, dir []byte, maxcount uint32) page {
	return func(cookie uint64, verf [8]byte) ([]string, uint64, [8]byte, bool, error) {
		r, st, err := c.ReaddirPlusPage(ctx(t), dir, cookie, verf, maxcount, maxcount)
		if err == nil && st != nfsv3.NFS3_OK {
			err = fmt.Errorf("READDIRPLUS: %s", statusName(st))
		}
		if err != nil {
			return nil, 0, verf, false, err
		}
		var names []string
		for e := r.Reply.Entries; e != nil; e = e.Nextentry {
			if nfsclient.Handle(e.NameHandle) == nil {
				return nil, 0, verf, false, fmt.Errorf("READDIRPLUS: entry %q without a handle", e.Name)
			}
			names, cookie = append(names, e.Name), e.Cookie
		}
		return names, cookie, r.Cookieverf, r.Reply.Eof, nil
	}
}

// TestReaddirCookiesStableUnderChange lists a directory page by page while
// entries are created, removed and renamed between pages: every entry that
// exists throughout appears exactly once, removed entries not yet listed
// never appear, and new entries appear once.
func TestReaddirCookiesStableUnderChange(t *testing.T) {
	for _, plus := range []bool{false, true} {
		name := map[bool]string{false: "READDIR", true: "READDIRPLUS"}[plus]
		t.Run(name, func(t *testing.T) {
			s := startServer(t, serverOpts{})
			c, root := s.rootClient()
			dir := s.mkdirIn(c, root, "dir")
			const initial = 400
			s.createEntries(dir, "e", initial)
			list := readdirPages(t, c, dir, 1024)
			if plus {
				list = readdirplusPages(t, c, dir, 4096)
			}

			seen := map[string]int{}
			var listed []string // initial entries listed and not yet removed
			gone := map[string]bool{}
			added := map[string]bool{}
			renamed := map[string]string{} // old → new, renamed before being listed
			tail := initial - 1            // the highest initial entry not yet touched
			cookie, verf := uint64(0), [8]byte{}
			pages := 0
			for ; pages < 10000; pages++ {
				names, next, nverf, eof, err := list(cookie, verf)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					seen[n]++
					if strings.HasPrefix(n, "e") {
						listed = append(listed, n)
					}
				}
				cookie, verf = next, nverf
				if eof {
					break
				}
				// Between pages: 3 new entries, remove 2 not yet listed and 1
				// already listed, rename 1 not yet listed.
				cx := ctx(t)
				for k := 0; k < 3; k++ {
					n := fmt.Sprintf("new-%d-%d", pages, k)
					_, st, err := c.Create(cx, dir, n, nfsclient.Guarded(nfsclient.Set{}))
					must(t, "CREATE "+n, st, err)
					added[n] = true
				}
				for k := 0; k < 2 && tail > 0; k++ {
					n := fmt.Sprintf("e%06d", tail)
					tail--
					if seen[n] > 0 {
						continue
					}
					_, st, err := c.Remove(cx, dir, n)
					must(t, "REMOVE "+n, st, err)
					gone[n] = true
				}
				if len(listed) > 0 {
					n := listed[0]
					listed = listed[1:]
					_, st, err := c.Remove(cx, dir, n)
					must(t, "REMOVE "+n, st, err)
					gone[n] = true
				}
				if n := fmt.Sprintf("e%06d", tail); tail > 0 && seen[n] == 0 {
					tail--
					to := "renamed-" + n
					_, st, err := c.Rename(cx, dir, n, dir, to)
					must(t, "RENAME "+n, st, err)
					renamed[n] = to
				}
			}
			t.Logf("%d pages; %d removed, %d added, %d renamed between pages", pages+1, len(gone), len(added), len(renamed))
			if pages < 10 {
				t.Fatalf("only %d pages: the test wants many", pages+1)
			}
			for n, k := range seen {
				if k != 1 {
					t.Errorf("%q listed %d times", n, k)
				}
			}
			for i := 0; i < initial; i++ {
				n := fmt.Sprintf("e%06d", i)
				to, wasRenamed := renamed[n]
				switch {
				case wasRenamed:
					if seen[n] != 0 || seen[to] != 1 {
						t.Errorf("%q renamed to %q before being listed: listed %d and %d times, want 0 and 1", n, to, seen[n], seen[to])
					}
				case gone[n] && seen[n] == 0:
				case seen[n] != 1:
					t.Errorf("%q, present throughout, listed %d times", n, seen[n])
				}
			}
			for n := range added {
				if seen[n] != 1 {
					t.Errorf("%q, created during the listing, listed %d times", n, seen[n])
				}
			}
			if seen["."] != 1 || seen[".."] != 1 {
				t.Errorf(". and .. listed %d and %d times", seen["."], seen[".."])
			}
		})
	}
}

// TestReaddirHundredThousand lists a directory of 100,000 entries (10,000
// under the race detector) over READDIRPLUS: each entry exactly once, each
// with its handle and attributes.
func TestReaddirHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("lists 100,000 entries")
	}
	n := 100_000
	if raceEnabled {
		n = 10_000
	}
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	dir := s.mkdirIn(c, root, "big")
	start := time.Now()
	s.createEntries(dir, "entry-", n)
	created := time.Since(start)

	start = time.Now()
	ents, st, err := c.ReaddirPlus(ctx(t), dir, 1<<20)
	must(t, fmt.Sprintf("READDIRPLUS of %d entries", n), st, err)
	listed := time.Since(start)
	t.Logf("created %d entries in %v, listed them in %v", n, created.Round(time.Millisecond), listed.Round(time.Millisecond))

	if len(ents) != n+2 {
		t.Errorf("listed %d entries, want %d and . and ..", len(ents), n)
	}
	seen := make(map[string]bool, n)
	for _, e := range ents {
		if seen[e.Name] {
			t.Fatalf("%q listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Attr == nil || e.Handle == nil || e.Attr.Fileid != e.Fileid {
			t.Fatalf("%q: handle %x attributes %+v fileid %d", e.Name, e.Handle, e.Attr, e.Fileid)
		}
	}
	for i := 0; i < n; i++ {
		if name := fmt.Sprintf("entry-%06d", i); !seen[name] {
			t.Fatalf("%q not listed", name)
		}
	}
	// The handles are real: the last entry's handle reads.
	last := ents[len(ents)-1]
	if h, err := s.handles.Decode(last.Handle); err != nil || h != (fh.Handle{Vol: s.vol.ID, Ino: last.Fileid, Gen: h.Gen}) {
		t.Fatalf("handle of %q: %+v %v", last.Name, h, err)
	}
	if a, st, err := c.Getattr(ctx(t), last.Handle); err != nil || st != nfsv3.NFS3_OK || a.Fileid != last.Fileid {
		t.Fatalf("GETATTR %q: %s %v", last.Name, statusName(st), err)
	}
}
