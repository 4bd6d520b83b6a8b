package rpc

import "sync"

// Calls are served by goroutines that, once a call is answered, wait for
// the next one instead of exiting. A fresh goroutine starts on a small
// stack and a call through the NFS server, the state machine and Pebble
// grows it several times (copying it each time: 7-9 % of a metadata
// load's CPU); a worker that stays keeps its grown stack. At most
// maxIdleWorkers wait at a time, server-wide, so that idle connections cost
// nothing more; a call that finds none waiting starts a new one.
const maxIdleWorkers = 128

type workers struct {
	once  sync.Once
	calls chan func()   // unbuffered: a send succeeds only into a waiting worker
	quit  chan struct{} // closed by Server.Close: waiting workers exit
	mu    sync.Mutex
	idle  int
	shut  bool
}

func (w *workers) init() {
	w.once.Do(func() {
		w.calls = make(chan func())
		w.quit = make(chan struct{})
	})
}

// run runs f on a waiting worker, or on a new goroutine if none waits.
func (w *workers) run(f func()) {
	w.init()
	select {
	case w.calls <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	for {
		f()
		if !w.wait() {
			return
		}
		select {
		case f = <-w.calls:
			w.done()
		case <-w.quit:
			w.done()
			return
		}
	}
}

// wait counts this worker as waiting; false if enough already wait (or
// the server is closed) and it should exit.
func (w *workers) wait() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut || w.idle >= maxIdleWorkers {
		return false
	}
	w.idle++
	return true
}

func (w *workers) done() {
	w.mu.Lock()
	w.idle--
	w.mu.Unlock()
}

// close makes waiting workers exit, and those still serving exit after.
func (w *workers) close() {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.shut {
		w.shut = true
		close(w.quit)
	}
}

// waiting returns how many workers wait for a call.
func (w *workers) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.idle
}
