package testkit

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultProxyModes checks the proxy itself against an echo server: pass
// forwards, blackhole swallows bytes both ways without closing anything
// (and hides new connections from the target), healing closes the broken
// streams, reset refuses.
func TestFaultProxyModes(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoConns atomic.Int64
	var ewg sync.WaitGroup
	var emu sync.Mutex
	var open []net.Conn
	ewg.Add(1)
	go func() {
		defer ewg.Done()
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			echoConns.Add(1)
			emu.Lock()
			open = append(open, c)
			emu.Unlock()
			ewg.Add(1)
			go func() {
				defer ewg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		echo.Close()
		emu.Lock()
		for _, c := range open {
			c.Close()
		}
		emu.Unlock()
		ewg.Wait()
	})

	p := NewFaultProxy(t, echo.Addr().String())
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			t.Fatalf("dial the proxy: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// roundTrip sends msg and reads the echo: "" if none came in wait, or
	// "closed" if the connection ended.
	roundTrip := func(c net.Conn, msg string, wait time.Duration) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(wait))
		defer c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte(msg)); err != nil {
			return "closed"
		}
		buf := make([]byte, len(msg))
		n, err := io.ReadFull(c, buf)
		var ne net.Error
		switch {
		case err == nil:
			return string(buf[:n])
		case errors.As(err, &ne) && ne.Timeout():
			return ""
		default:
			return "closed"
		}
	}

	a := dial()
	if got := roundTrip(a, "hello", 2*time.Second); got != "hello" {
		t.Fatalf("pass: echo %q, want hello", got)
	}

	p.SetMode(Blackhole)
	if got := roundTrip(a, "lost", 300*time.Millisecond); got != "" {
		t.Fatalf("blackhole: an open connection got %q back; want silence", got)
	}
	before := echoConns.Load()
	b := dial() // accepted, but goes nowhere
	if got := roundTrip(b, "lost too", 300*time.Millisecond); got != "" {
		t.Fatalf("blackhole: a new connection got %q back; want silence", got)
	}
	if n := echoConns.Load(); n != before {
		t.Fatalf("blackhole: the target saw %d new connections; want none", n-before)
	}

	p.SetMode(Pass)
	for name, c := range map[string]net.Conn{"the connection that lost bytes": a, "the connection made in the blackhole": b} {
		if got := roundTrip(c, "x", 2*time.Second); got != "closed" {
			t.Errorf("after healing, %s answered %q; want it closed", name, got)
		}
	}
	c := dial()
	if got := roundTrip(c, "again", 2*time.Second); got != "again" {
		t.Fatalf("healed: echo %q, want again", got)
	}

	p.SetMode(Reset)
	if got := roundTrip(c, "x", 2*time.Second); got != "closed" {
		t.Errorf("reset: an open connection answered %q; want it closed", got)
	}
	// A new connection is reset as soon as it is accepted: the reset may
	// already reach the dial.
	if d, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		if got := roundTrip(d, "x", 2*time.Second); got != "closed" {
			t.Errorf("reset: a new connection answered %q; want it refused", got)
		}
		d.Close()
	}

	p.SetMode(Pass)
	if got := roundTrip(dial(), "back", 2*time.Second); got != "back" {
		t.Fatalf("pass after reset: echo %q, want back", got)
	}
	t.Log(p.Stats())
}
