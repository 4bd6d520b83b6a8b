//go:build chaos

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

const (
	regCount  = 6
	regSize   = 24 // every register write replaces the whole file
	regInit   = "init"
	opTimeout = 20 * time.Second
)

// history is what the clients saw.
type history struct {
	mu        sync.Mutex
	regs      []RegOp
	created   map[string]Created
	ok        map[string]int // operations with a definite answer, by kind
	unknown   map[string]int // writes/creates whose outcome is unknown
	failed    map[string]int // reads without an answer
	statuses  map[string]int // error replies and errors, by text
	anomalies []string
}

func newHistory() *history {
	return &history{created: map[string]Created{}, ok: map[string]int{}, unknown: map[string]int{}, failed: map[string]int{}, statuses: map[string]int{}}
}

func (h *history) addReg(op RegOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.regs = append(h.regs, op)
	if op.Unknown {
		h.unknown[op.Kind.String()]++
	} else {
		h.ok[op.Kind.String()]++
	}
}

func (h *history) count(m map[string]int, kind string) {
	h.mu.Lock()
	m[kind]++
	h.mu.Unlock()
}

func (h *history) status(what string) {
	h.mu.Lock()
	h.statuses[what]++
	h.mu.Unlock()
}

func (h *history) anomaly(format string, args ...any) {
	h.mu.Lock()
	h.anomalies = append(h.anomalies, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *history) setCreated(name string, c Created) {
	h.mu.Lock()
	h.created[name] = c
	h.mu.Unlock()
}

// dump is the history in call order, for a failure report.
func (h *history) dump() string {
	h.mu.Lock()
	ops := append([]RegOp(nil), h.regs...)
	h.mu.Unlock()
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call.Before(ops[j].Call) })
	var b strings.Builder
	for _, o := range ops {
		b.WriteString(o.String() + "\n")
	}
	return b.String()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// handles are the files the workers use, resolved once (handles are the
// same on every node).
type handles struct {
	root, sets []byte
	regs       []string
	reg        map[string][]byte
}

func regValue(v string) []byte { return []byte(fmt.Sprintf("%-*s", regSize, v)) }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dialMount connects to addr and mounts /data, retrying until ctx ends.
func dialMount(ctx context.Context, addr, machine string) (*nfsclient.Client, []byte, error) {
	var last error
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		gc, err := nfsclient.Dial(dctx, addr, nfsclient.Options{Machine: machine})
		if err == nil {
			root, st, merr := gc.Mount(dctx, "/data")
			cancel()
			if merr == nil && st == mount.MNT3_OK {
				return gc, root, nil
			}
			gc.Close()
			last = fmt.Errorf("MNT /data: status %d, %v", st, merr)
		} else {
			cancel()
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, nil, fmt.Errorf("connect to %s: %w (last: %v)", addr, ctx.Err(), last)
}

// setup makes the registers (value regInit) and the directory of created
// files through addr.
func setup(t *testing.T, addr string) *handles {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gc, root, err := dialMount(ctx, addr, "chaos-setup")
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	mode := uint32(0o755)
	hs := &handles{root: root, reg: map[string][]byte{}}
	for _, d := range []string{"regs", "sets"} {
		r, st, err := gc.Mkdir(ctx, root, d, nfsclient.Set{Mode: &mode})
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("MKDIR %s: status %d, %v", d, st, err)
		}
		if d == "sets" {
			hs.sets = nfsclient.Handle(r.Obj)
		} else {
			regs := nfsclient.Handle(r.Obj)
			fm := uint32(0o644)
			for i := 0; i < regCount; i++ {
				name := fmt.Sprintf("r%d", i)
				cr, st, err := gc.Create(ctx, regs, name, nfsclient.Guarded(nfsclient.Set{Mode: &fm}))
				if err != nil || st != nfsv3.NFS3_OK {
					t.Fatalf("CREATE %s: status %d, %v", name, st, err)
				}
				h := nfsclient.Handle(cr.Obj)
				if _, st, err := gc.Write(ctx, h, 0, regValue(regInit)); err != nil || st != nfsv3.NFS3_OK {
					t.Fatalf("WRITE %s: status %d, %v", name, st, err)
				}
				hs.regs = append(hs.regs, name)
				hs.reg[name] = h
			}
		}
	}
	return hs
}

// worker is one NFS client (its own connection, AUTH_SYS machine name
// chaos-c<id>) doing one operation at a time through a tunnel.
type worker struct {
	id   int
	addr string
	rng  *rand.Rand
	h    *history
	hs   *handles
	gc   *nfsclient.Client
	seq  int
}

func (w *worker) run(stop <-chan struct{}) {
	defer func() {
		if w.gc != nil {
			w.gc.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if w.gc == nil {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			gc, _, err := dialMount(ctx, w.addr, fmt.Sprintf("chaos-c%d", w.id))
			cancel()
			if err != nil {
				w.h.status("connect: " + err.Error())
				continue
			}
			w.gc = gc
		}
		w.seq++
		switch p := w.rng.IntN(100); {
		case p < 45:
			w.write()
		case p < 90:
			w.read()
		default:
			w.create()
		}
		time.Sleep(time.Duration(w.rng.IntN(10)) * time.Millisecond)
	}
}

// broken drops the connection after a call that got no answer: the next
// operation starts on a fresh one.
func (w *worker) broken(err error) {
	w.h.status(errText(err))
	w.gc.Close()
	w.gc = nil
}

func errText(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, nfsclient.ErrClosed):
		return "connection closed"
	}
	return err.Error()
}

func (w *worker) write() {
	key := w.hs.regs[w.rng.IntN(len(w.hs.regs))]
	v := fmt.Sprintf("c%d-%d", w.id, w.seq)
	op := RegOp{Client: w.id, Key: key, Kind: Write, Value: v, Call: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	r, st, err := w.gc.Write(ctx, w.hs.reg[key], 0, regValue(v))
	cancel()
	op.Return = time.Now()
	switch {
	case err != nil:
		op.Unknown = true
		w.broken(err)
	case st != nfsv3.NFS3_OK:
		op.Unknown = true
		w.h.status(fmt.Sprintf("WRITE status %d", st))
	case r.Count != regSize:
		op.Unknown = true
		w.h.anomaly("WRITE of %s by client %d: %d of %d bytes written", key, w.id, r.Count, regSize)
	}
	w.h.addReg(op)
}

func (w *worker) read() {
	key := w.hs.regs[w.rng.IntN(len(w.hs.regs))]
	op := RegOp{Client: w.id, Key: key, Kind: Read, Call: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	r, st, err := w.gc.Read(ctx, w.hs.reg[key], 0, 64)
	cancel()
	op.Return = time.Now()
	switch {
	case err != nil:
		w.h.count(w.h.failed, "read")
		w.broken(err)
		return
	case st != nfsv3.NFS3_OK:
		w.h.count(w.h.failed, "read")
		w.h.status(fmt.Sprintf("READ status %d", st))
		return
	}
	op.Value = string(r.Data)
	if len(r.Data) == regSize {
		op.Value = strings.TrimRight(op.Value, " ")
	} // else: a torn or short file, which the model rejects
	w.h.addReg(op)
}

// create makes a new file with unique content (CREATE GUARDED, then one
// FILE_SYNC WRITE); it is acknowledged when both are.
func (w *worker) create() {
	name := fmt.Sprintf("c%d-%05d", w.id, w.seq)
	data := []byte(fmt.Sprintf("%s %d %x\n", name, w.rng.Uint64(), w.rng.Uint64()))
	data = append(data, make([]byte, w.rng.IntN(8<<10))...)
	c := Created{Sum: sha(data)}
	w.h.setCreated(name, c)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	mode := uint32(0o644)
	cr, st, err := w.gc.Create(ctx, w.hs.sets, name, nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
	switch {
	case err != nil:
		w.h.count(w.h.unknown, "create")
		w.broken(err)
		return
	case st == nfsv3.NFS3ERR_EXIST:
		// A name no one used before: the create ran twice (a resent call
		// not answered from the duplicate request cache).
		w.h.anomaly("CREATE GUARDED %s by client %d answered EXIST: the name was new", name, w.id)
		return
	case st != nfsv3.NFS3_OK:
		w.h.count(w.h.unknown, "create")
		w.h.status(fmt.Sprintf("CREATE status %d", st))
		return
	}
	h := nfsclient.Handle(cr.Obj)
	r, st, err := w.gc.Write(ctx, h, 0, data)
	switch {
	case err != nil:
		w.h.count(w.h.unknown, "create")
		w.broken(err)
		return
	case st != nfsv3.NFS3_OK || int(r.Count) != len(data):
		w.h.count(w.h.unknown, "create")
		w.h.status(fmt.Sprintf("WRITE (new file) status %d", st))
		return
	}
	c.Acked = true
	w.h.setCreated(name, c)
	w.h.count(w.h.ok, "create")
}

// finalState reads every register once more (part of the history) and
// every created file, through addr.
func finalState(t *testing.T, addr string, h *history, hs *handles) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gc, _, err := dialMount(ctx, addr, "chaos-final")
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	for _, key := range hs.regs {
		op := RegOp{Client: -1, Key: key, Kind: Read, Call: time.Now()}
		r, st, err := gc.Read(ctx, hs.reg[key], 0, 64)
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("final READ of %s: status %d, %v", key, st, err)
		}
		op.Return, op.Value = time.Now(), strings.TrimRight(string(r.Data), " ")
		h.addReg(op)
	}
	ents, st, err := gc.ReaddirPlus(ctx, hs.sets, 0)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Fatalf("final READDIRPLUS of sets: status %d, %v", st, err)
	}
	found := map[string]string{}
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." {
			continue
		}
		fh, st, err := gc.LookupPath(ctx, hs.sets, e.Name)
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("final LOOKUP sets/%s: status %d, %v", e.Name, st, err)
		}
		data, err := gc.ReadFile(ctx, fh, 64<<10, 1<<20)
		if err != nil {
			t.Fatalf("final READ sets/%s: %v", e.Name, err)
		}
		found[e.Name] = sha(data)
	}
	return found
}
