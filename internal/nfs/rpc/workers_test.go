package rpc

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Workers run calls concurrently, stay for the next call up to the bound,
// serve it without a new goroutine, and exit when the server closes.
func TestWorkersReuseBoundAndClose(t *testing.T) {
	var w workers
	base := runtime.NumGoroutine()
	const n = maxIdleWorkers + 72
	release := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	for range n {
		w.run(func() { started.Done(); <-release; finished.Done() })
	}
	started.Wait() // all n at once: none waited for another
	close(release)
	finished.Wait()
	waitFor(t, "the idle workers are at the bound", func() bool { return w.waiting() == maxIdleWorkers })
	waitFor(t, "the workers past the bound have exited", func() bool { return runtime.NumGoroutine() <= base+maxIdleWorkers })

	// The next call takes a waiting worker.
	hold := make(chan struct{})
	running := make(chan struct{})
	w.run(func() { close(running); <-hold })
	<-running
	if got := w.waiting(); got != maxIdleWorkers-1 {
		t.Errorf("waiting workers while one serves a call: %d, want %d", got, maxIdleWorkers-1)
	}
	if g := runtime.NumGoroutine(); g > base+maxIdleWorkers {
		t.Errorf("goroutines %d, want at most %d: the call started a new one", g, base+maxIdleWorkers)
	}
	close(hold)

	w.close()
	waitFor(t, "no worker waits after close", func() bool { return w.waiting() == 0 })
	waitFor(t, "the workers have exited", func() bool { return runtime.NumGoroutine() <= base })
	done := make(chan struct{})
	w.run(func() { close(done) }) // still served after close, on a goroutine of its own
	<-done
}
