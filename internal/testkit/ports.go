package testkit

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePorts finds n distinct free ports on 127.0.0.1 by listening on port 0,
// never handing out the same port twice in one test binary.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; len(ports) < n && i < 20*n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		lns = append(lns, ln)
		p := ln.Addr().(*net.TCPAddr).Port
		if !portsUsed[p] {
			portsUsed[p] = true
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		t.Fatalf("found only %d of %d free ports", len(ports), n)
	}
	return ports
}

// ListenUnused listens on 127.0.0.1:0, skipping ports FreePorts has handed
// out (a node may not have bound its port yet), and records the port so
// that FreePorts never hands it out.
func ListenUnused(t testing.TB) net.Listener {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	var skipped []net.Listener
	defer func() {
		for _, l := range skipped {
			l.Close()
		}
	}()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen on a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if portsUsed[port] {
			skipped = append(skipped, ln) // keep it bound so that the next try gets another
			continue
		}
		portsUsed[port] = true
		return ln
	}
	t.Fatalf("no unused port in 50 tries")
	return nil
}

// ClaimPorts marks ports as used if none of them was handed out before and
// each can be bound on 127.0.0.1 now; it reports whether it did.
func ClaimPorts(ports []int) bool {
	portMu.Lock()
	defer portMu.Unlock()
	for _, p := range ports {
		if portsUsed[p] {
			return false
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	for _, p := range ports {
		portsUsed[p] = true
	}
	return true
}
