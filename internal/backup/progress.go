package backup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune Push, Restore and Verify.
type Options struct {
	// ID is the id of the backup Push makes (default: NewID of the time).
	ID string
	// Workers is how many objects are transferred at once (default 4).
	Workers int
	// Progress, if set, is called about every ProgressEvery (default 1 s)
	// while the operation runs, and once at its end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Previous, for Push, is the volume's latest backup: a file whose
	// inode, size, mtime and ctime are the same as there is not read again,
	// its chunks are taken from it (every change to a file sets its ctime,
	// chosen by the leader). Nil reads every file.
	Previous *Manifest
	// SkipUnchanged makes Push return ErrUnchanged, and write no backup,
	// when the tree is the same as Previous's.
	SkipUnchanged bool
}

func (o Options) workers() int {
	if o.Workers <= 0 {
		return 4
	}
	return o.Workers
}

// Progress is a report on a running operation.
type Progress struct {
	Op       string // push | restore | verify
	Bytes    uint64 // push: file data scanned; restore: written; verify: read back
	Total    uint64 // the Bytes expected in all, when known (0: unknown); push: the volume's stored data
	Uploaded uint64 // push: bytes of new chunks stored
	// Unchanged (push) is the data of files unchanged since the previous
	// backup, not read again: with Bytes, the part of Total done.
	Unchanged uint64
	Files     int64         // files (inodes) done
	Elapsed   time.Duration // since the operation started
}

// Rate returns Bytes per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Bytes) / p.Elapsed.Seconds()
}

// counters are an operation's running figures, shared by its goroutines.
type counters struct {
	op       string
	start    time.Time
	total    atomic.Uint64
	bytes    atomic.Uint64
	uploaded atomic.Uint64
	skipped  atomic.Uint64 // push: bytes of unchanged files not read again
	files    atomic.Int64
}

func newCounters(op string) *counters { return &counters{op: op, start: time.Now()} }

func (c *counters) snapshot() Progress {
	return Progress{Op: c.op, Bytes: c.bytes.Load(), Total: c.total.Load(), Uploaded: c.uploaded.Load(),
		Unchanged: c.skipped.Load(), Files: c.files.Load(), Elapsed: time.Since(c.start)}
}

// report calls o.Progress every interval until the returned stop is
// called, which makes one last report.
func (c *counters) report(o Options) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	every := o.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				o.Progress(c.snapshot())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			o.Progress(c.snapshot())
		})
	}
}

// group runs goroutines that share a context cancelled by the first error.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func newGroup(ctx context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

func (g *group) Go(fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(g.ctx); err != nil {
			g.fail(err)
		}
	}()
}

// fail records err if it is the first real one and cancels the others.
func (g *group) fail(err error) {
	g.mu.Lock()
	// A cancellation caused by an earlier error is not the cause.
	if g.err == nil || errors.Is(g.err, context.Canceled) && !errors.Is(err, context.Canceled) {
		g.err = err
	}
	g.mu.Unlock()
	g.cancel()
}

// Wait waits for every goroutine and returns the first error.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
