package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// crashChunk is the size of the WRITEs of the crash-consistency writers:
// below fsstate.MaxEntryData, so each WRITE is one raft entry.
const crashChunk = 32 << 10

// crashWriter writes numbered files /<dir>/fNNNNN into volume data over its
// own NFS connection, one after the other, each with content that starts
// with its name and number. An atomic writer writes each file as
// .tmp-fNNNNN (CREATE GUARDED, WRITEs of crashChunk) and publishes it with
// RENAME; a direct one writes fNNNNN in place (as cp does).
type crashWriter struct {
	dir    string
	atomic bool
	g      *snapGo
	dirH   []byte

	mu      sync.Mutex
	started []time.Time // by file number: when its CREATE was sent
	acked   []time.Time // by file number: when its last call was answered (zero: not acknowledged)
	err     error
}

func crashData(dir string, i int) []byte {
	// 1 KiB to about 200 KiB: from one WRITE to seven.
	size := 1<<10 + (i*7919)%(200<<10)
	return content(fmt.Sprintf("snapshot crash test: /%s/f%05d number %d", dir, i, i), size)
}

func (w *crashWriter) run(ctx context.Context) {
	mode := uint32(0o644)
	for i := 0; i < 100_000 && ctx.Err() == nil; i++ {
		name := fmt.Sprintf("f%05d", i)
		create := name
		if w.atomic {
			create = ".tmp-" + name
		}
		data := crashData(w.dir, i)
		w.mu.Lock()
		w.started = append(w.started, time.Now())
		w.acked = append(w.acked, time.Time{})
		w.mu.Unlock()
		err := func() error {
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, st, err := w.g.gc.Create(cctx, w.dirH, create, nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
			if err != nil || st != nfsv3.NFS3_OK {
				return fmt.Errorf("CREATE %s/%s: status %d, %v", w.dir, create, st, err)
			}
			h := nfsclient.Handle(r.Obj)
			if err := w.g.gc.WriteFile(cctx, h, data, crashChunk); err != nil {
				return fmt.Errorf("WRITE %s/%s: %v", w.dir, create, err)
			}
			if w.atomic {
				if _, st, err := w.g.gc.Rename(cctx, w.dirH, create, w.dirH, name); err != nil || st != nfsv3.NFS3_OK {
					return fmt.Errorf("RENAME %s/%s: status %d, %v", w.dir, create, st, err)
				}
			}
			return nil
		}()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.acked[i] = time.Now()
		w.mu.Unlock()
	}
}

// bounds returns the number of files acknowledged before t (all of them
// were, in order: the writer waits for each), and the number of the first
// file started after u (len(started) if none).
func (w *crashWriter) bounds(t, u time.Time) (ackedBefore, firstAfter int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, a := range w.acked {
		if !a.IsZero() && a.Before(t) {
			ackedBefore = i + 1
		}
	}
	firstAfter = len(w.started)
	for i, s := range w.started {
		if s.After(u) {
			firstAfter = i
			break
		}
	}
	return ackedBefore, firstAfter
}

func (w *crashWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *crashWriter) count() (started, acked int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.acked {
		if !a.IsZero() {
			acked++
		}
	}
	return len(w.started), acked
}

// crashSnap is one snapshot taken while the writers ran.
type crashSnap struct {
	name           string
	issued, done   time.Time
	ackedBefore    []int // by writer
	startedAfter   []int // by writer
	prefix         []int // by writer: the files it holds are f00000 … f<prefix-1>
	partialWriters []string
}

// TestSnapshotCrashConsistency takes three snapshots while four clients
// write numbered files into the volume, as fast as they can, each over its
// own NFS connection: three publish each file with a RENAME once it is
// written, one writes its files in place. In every snapshot, for every
// client: the files are f00000 up to some number with none missing (a
// prefix of the sequence); every file acknowledged before the snapshot
// command was issued is in it, none started after it returned; every
// published file is complete and correct; at most one file is in flight
// (the next one: the atomic clients' temporary file, the direct client's
// last file), holding a prefix of its content made of whole WRITEs. Later
// snapshots hold at least what earlier ones do.
func TestSnapshotCrashConsistency(t *testing.T) {
	c := iopCluster(t)
	leader := iopLeader(t, c)
	nfs := leader.NFSAddr
	setup := snapMount(t, nfs, "data")

	var writers []*crashWriter
	for k, atomic := range []bool{true, true, true, false} {
		dir := fmt.Sprintf("w%d", k)
		g := snapMount(t, nfs, "data")
		w := &crashWriter{dir: dir, atomic: atomic, g: g, dirH: setup.mkdir(setup.root, dir)}
		writers = append(writers, w)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	progress := func() string {
		var parts []string
		for _, w := range writers {
			s, a := w.count()
			parts = append(parts, fmt.Sprintf("%s: %d started, %d acknowledged", w.dir, s, a))
		}
		return strings.Join(parts, "; ")
	}
	waitFor(t, 30*time.Second, "every writer to have 10 files acknowledged", func() (bool, string) {
		for _, w := range writers {
			if err := w.failed(); err != nil {
				t.Fatalf("writer %s: %v", w.dir, err)
			}
			if _, a := w.count(); a < 10 {
				return false, progress()
			}
		}
		return true, ""
	})

	var snaps []*crashSnap
	for n := 1; n <= 3; n++ {
		if n > 1 {
			time.Sleep(time.Second)
		}
		s := &crashSnap{name: fmt.Sprintf("mid%d", n)}
		s.issued = time.Now()
		snapCreate(t, c, "data", s.name)
		s.done = time.Now()
		for _, w := range writers {
			a, b := w.bounds(s.issued, s.done)
			s.ackedBefore = append(s.ackedBefore, a)
			s.startedAfter = append(s.startedAfter, b)
		}
		t.Logf("snapshot %s: keel snapshot create took %v; %s", s.name, s.done.Sub(s.issued).Round(time.Millisecond), progress())
		snaps = append(snaps, s)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	for _, w := range writers {
		if err := w.failed(); err != nil {
			t.Errorf("writer %s: %v", w.dir, err)
		}
	}
	t.Logf("writers stopped: %s", progress())

	for _, s := range snaps {
		info := snapGet(t, c, "data", s.name)
		sg := snapMount(t, nfs, "data@"+s.name)
		for k, w := range writers {
			s.prefix = append(s.prefix, crashCheckDir(t, nfs, sg, s, k, w))
		}
		t.Logf("snapshot %s (raft index %d): holds %v files of the writers; acknowledged before it was issued %v, first started after it returned %v; in flight %v",
			s.name, info.Index, s.prefix, s.ackedBefore, s.startedAfter, s.partialWriters)
	}
	for i := 1; i < len(snaps); i++ {
		for k, w := range writers {
			if snaps[i].prefix[k] < snaps[i-1].prefix[k] {
				t.Errorf("writer %s: %s holds %d files, the earlier %s %d", w.dir, snaps[i].name, snaps[i].prefix[k], snaps[i-1].name, snaps[i-1].prefix[k])
			}
		}
	}
	// The live volume holds every acknowledged file.
	live := snapMount(t, nfs, "data")
	for _, w := range writers {
		_, acked := w.count()
		for i := 0; i < acked; i++ {
			want := crashData(w.dir, i)
			h := live.lookup(fmt.Sprintf("%s/f%05d", w.dir, i))
			if got, err := live.read(h); err != nil || !bytes.Equal(got, want) {
				t.Errorf("data:/%s/f%05d (acknowledged): %d bytes sha256 %.12s, %v; want %d bytes sha256 %.12s", w.dir, i, len(got), sum(got), err, len(want), sum(want))
			}
		}
	}
	waitConverged(t, c.DataMembers(), 30*time.Second)
}

// crashCheckDir checks writer w's directory in snapshot s (mounted as sg)
// and returns how many numbered files it holds. The listing comes from
// nfs-ls; the files are read with the Go client, and the last ones also
// with nfs-cat.
func crashCheckDir(t *testing.T, nfsAddr string, sg *snapGo, s *crashSnap, k int, w *crashWriter) int {
	t.Helper()
	export := "data@" + s.name
	ents, err := snapLs(nfsAddr, export, w.dir)
	if err != nil {
		t.Fatalf("nfs-ls %s:/%s: %v", export, w.dir, err)
	}
	var nums []int
	var inflight []string
	for name := range ents {
		var i int
		switch {
		case len(name) == 6 && strings.HasPrefix(name, "f"):
			if _, err := fmt.Sscanf(name, "f%05d", &i); err != nil {
				t.Errorf("%s:/%s: unexpected name %q", export, w.dir, name)
				continue
			}
			nums = append(nums, i)
		case strings.HasPrefix(name, ".tmp-f") && w.atomic:
			inflight = append(inflight, name)
		default:
			t.Errorf("%s:/%s: unexpected name %q", export, w.dir, name)
		}
	}
	sort.Ints(nums)
	n := len(nums)
	for j, i := range nums {
		if i != j {
			t.Errorf("%s:/%s: files %v…: f%05d is missing, yet later files are there (not a prefix of the sequence)", export, w.dir, nums[:min(len(nums), j+3)], j)
			break
		}
	}
	if n < s.ackedBefore[k] {
		t.Errorf("%s:/%s holds %d files; %d were acknowledged before `keel snapshot create` was issued", export, w.dir, n, s.ackedBefore[k])
	}
	// The direct writer's last file may be the one in flight.
	complete := n
	if !w.atomic && n > 0 {
		complete = n - 1
		inflight = append(inflight, fmt.Sprintf("f%05d", n-1))
	}
	if limit := s.startedAfter[k]; complete > limit || (w.atomic && n > limit) {
		t.Errorf("%s:/%s holds %d files; file %d was started only after `keel snapshot create` returned", export, w.dir, n, limit)
	}
	dir := sg.lookup(w.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := func(name string) []byte {
		r, st, err := sg.gc.Lookup(ctx, dir, name)
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("LOOKUP %s:/%s/%s: status %d, %v", export, w.dir, name, st, err)
		}
		b, err := sg.gc.ReadFile(ctx, r.Object.Data, 0, 1<<20)
		if err != nil {
			t.Fatalf("READ %s:/%s/%s: %v", export, w.dir, name, err)
		}
		return b
	}
	for i := 0; i < complete; i++ {
		name := fmt.Sprintf("f%05d", i)
		if got, want := read(name), crashData(w.dir, i); !bytes.Equal(got, want) {
			t.Errorf("%s:/%s/%s: %d bytes sha256 %.12s; want the whole file, %d bytes sha256 %.12s", export, w.dir, name, len(got), sum(got), len(want), sum(want))
		}
	}
	// The last complete files once more, with nfs-cat.
	for i := max(0, complete-2); i < complete; i++ {
		p := fmt.Sprintf("/%s/f%05d", w.dir, i)
		got, err := libnfs("nfs-cat", snapURL(nfsAddr, export, p))
		if want := crashData(w.dir, i); err != nil || !bytes.Equal(got, want) {
			t.Errorf("nfs-cat %s:%s: %d bytes sha256 %.12s, %v; want %d bytes sha256 %.12s", export, p, len(got), sum(got), err, len(want), sum(want))
		}
	}
	if len(inflight) > 1 {
		t.Errorf("%s:/%s: %d files in flight %v; a writer has one at a time", export, w.dir, len(inflight), inflight)
	}
	for _, name := range inflight {
		var i int
		fmt.Sscanf(strings.TrimPrefix(name, ".tmp-"), "f%05d", &i)
		if i != complete {
			t.Errorf("%s:/%s: %s in flight, after %d complete files; want file %d", export, w.dir, name, complete, complete)
		}
		got, want := read(name), crashData(w.dir, i)
		if !bytes.Equal(got, want[:min(len(got), len(want))]) || (len(got)%crashChunk != 0 && len(got) != len(want)) {
			t.Errorf("%s:/%s/%s (in flight): %d bytes; want a prefix of its %d bytes made of whole %d-byte WRITEs", export, w.dir, name, len(got), len(want), crashChunk)
		}
		s.partialWriters = append(s.partialWriters, fmt.Sprintf("%s/%s:%dB", w.dir, name, len(got)))
	}
	return n
}
