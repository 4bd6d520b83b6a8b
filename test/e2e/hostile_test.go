package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/fsstate"
	"keel/internal/nfs/nfsclient"
	"keel/internal/tunnel"
)

// hostileConns is how many idle and half-open connections are held at once.
const hostileConns = 10_000

// Node RSS limits of the hostile-clients test, in MiB over the RSS before
// the attacks. An idle or half-open connection holds no part of the NFS
// server's memory budget, only its 4 KiB read buffer, its goroutine and
// the runtime's bookkeeping (measured: about 9 KiB each). A slow reader
// holds at most its connection's share (16 MiB by default) and all of them
// together at most the budget (nfs.max_inflight_bytes, 256 MiB by
// default); the rest is slack for what the Go runtime keeps after a burst
// (freed memory it has not returned yet, buffers kept in pools).
const (
	idleLimitMiB        = 160
	shareMiB, budgetMiB = 16, 256
	slackMiB            = 48
)

// TestHostileClients attacks one `keel serve` process the way the network
// will: garbage bytes, oversized record marks, 10,000 idle and half-open
// connections at once, slow writers and readers, forged and replayed file
// handles, a tunnel without a valid client certificate, a client outside
// the export's networks, and root on a root-squashed export. Each gets a
// correct error or a closed connection; the node's memory (RSS from /proc)
// stays bounded; an honest client is served after every attack, and while
// the connections are held.
func TestHostileClients(t *testing.T) {
	requireBinary(t)
	c := startCluster(t, Shape{Data: 1})
	c.exportVolume("data")
	for _, args := range [][]string{
		{"volume", "create", "squashed", "--size", "1GiB"},
		{"volume", "export", "squashed", "--clients", "127.0.0.0/8"}, // root squash: the default
		{"volume", "create", "narrow", "--size", "1GiB"},
		{"volume", "export", "narrow", "--clients", "127.0.0.77/32"},
	} {
		if r := c.keel(30*time.Second, args...); r.Code != 0 {
			t.Fatalf("keel %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
	n := c.Members[0]
	addr := n.NFSAddr
	waitFor(t, 30*time.Second, "NFS to serve /data", func() (bool, string) { return iopNFSReady(addr) })

	honestN := 0
	honest := func(t *testing.T, when string) {
		t.Helper()
		honestN++
		start := time.Now()
		if err := honestClient(addr, fmt.Sprintf("honest-%d", honestN)); err != nil {
			t.Fatalf("an honest client %s: %v", when, err)
		}
		t.Logf("an honest client %s: served in %s", when, time.Since(start).Round(time.Millisecond))
	}
	honest(t, "before the attacks")
	base := rssKiB(t, n.PID())
	t.Logf("node RSS before the attacks: %d MiB", base>>10)
	// checkRSS fails if the node grew by more than limit MiB.
	checkRSS := func(what string, limitMiB int) {
		t.Helper()
		r := rssKiB(t, n.PID())
		t.Logf("node RSS %s: %d MiB (%+d MiB)", what, r>>10, (r-base)>>10)
		if (r-base)>>10 > int64(limitMiB) {
			t.Errorf("node RSS grew by %d MiB %s; want at most %d MiB", (r-base)>>10, what, limitMiB)
		}
	}

	t.Run("garbage", func(t *testing.T) {
		rng := mrand.New(mrand.NewPCG(1, 2))
		for i := 0; i < 200; i++ {
			cn := dialRaw(t, addr)
			junk := make([]byte, 1+rng.IntN(8192))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			if i%2 == 0 {
				// A well-framed record of random bytes: dropped or refused,
				// and the stream stays usable for a real call.
				rec := binary.BigEndian.AppendUint32(nil, uint32(len(junk))|1<<31)
				junk = append(rec, junk...)
			}
			_, _ = cn.Write(junk)
			if i%2 == 0 {
				if err := rawNull(cn, 0x1234, 5*time.Second); err != nil && !closed(err) {
					t.Fatalf("NULL after a framed garbage record: %v (want a reply or a closed connection)", err)
				}
			}
			cn.Close()
		}
		honest(t, "after 200 connections of garbage")
	})

	t.Run("oversized record marks", func(t *testing.T) {
		for _, marks := range [][]uint32{
			{0xffffffff},             // last fragment of 2 GiB
			{0x7fffffff},             // a 2 GiB fragment, more to come
			{1 << 21, 1 << 21},       // two 2 MiB fragments: over the limit together
			{0x80000000 | (3 << 20)}, // 3 MiB in one
		} {
			cn := dialRaw(t, addr)
			var b []byte
			for _, m := range marks {
				b = binary.BigEndian.AppendUint32(b, m)
				if m&0x7fffffff <= 1<<21 {
					b = append(b, make([]byte, m&0x7fffffff)...)
				}
			}
			_, _ = cn.Write(b)
			if err := expectClosed(cn, 10*time.Second); err != nil {
				t.Errorf("record marks %#x: %v", marks, err)
			}
			cn.Close()
		}
		honest(t, "after oversized record marks")
	})

	t.Run("10000 idle and half-open connections", func(t *testing.T) {
		raiseNoFile(t, hostileConns+1024)
		var conns []net.Conn
		defer func() {
			for _, cn := range conns {
				cn.Close()
			}
		}()
		for i := 0; i < hostileConns; i++ {
			cn, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			switch i % 4 {
			case 1: // half a record mark
				_, _ = cn.Write([]byte{0x80, 0})
			case 2: // a record mark promising 1 KiB, and 10 bytes of it
				_, _ = cn.Write(append(binary.BigEndian.AppendUint32(nil, 0x80000400), make([]byte, 10)...))
			case 3: // a 2 MiB fragment promised, 100 bytes sent
				_, _ = cn.Write(append(binary.BigEndian.AppendUint32(nil, 0x80000000|2<<20), make([]byte, 100)...))
			}
			conns = append(conns, cn)
		}
		time.Sleep(2 * time.Second) // let the node take them all in
		honest(t, fmt.Sprintf("while %d connections are held", len(conns)))
		checkRSS(fmt.Sprintf("with %d idle and half-open connections", len(conns)), idleLimitMiB)
	})

	t.Run("slow writer", func(t *testing.T) {
		cn := dialRaw(t, addr)
		defer cn.Close()
		call := nullCall(0x51)
		done := make(chan error, 1)
		go func() {
			for _, b := range call {
				if _, err := cn.Write([]byte{b}); err != nil {
					done <- err
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			done <- nil
		}()
		time.Sleep(300 * time.Millisecond)
		honest(t, "while a slow writer trickles a call")
		if err := <-done; err != nil {
			t.Fatalf("slow writer: %v", err)
		}
		if err := readReply(cn, 0x51, 10*time.Second); err != nil {
			t.Fatalf("the slow writer's NULL: %v", err)
		}
	})

	// inflight scrapes the node's NFS memory accounting: bytes held by
	// calls in flight, the budget, and connections closed for stalling.
	inflight := func(t *testing.T) (held, limit, closed float64) {
		t.Helper()
		m := scrape(t, c, n)
		return metricValue(t, m, "keel_nfs_inflight_bytes"), metricValue(t, m, "keel_nfs_inflight_limit_bytes"),
			metricValue(t, m, "keel_nfs_stalled_connections_closed_total")
	}
	var big []byte // a 1 MiB file's handle, made by the slow reader
	t.Run("slow reader", func(t *testing.T) {
		// 1 MiB file, then 500 READs of it on one connection whose replies
		// are never read: the node must block on that connection only.
		gc := goClient(t, addr)
		root := iopMount(t, gc)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mode := uint32(0o644)
		cr, st, err := gc.Create(ctx, root, "big", nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("CREATE big: status %d, %v", st, err)
		}
		big = nfsclient.Handle(cr.Obj)
		if err := gc.WriteFile(ctx, big, content("big", 1<<20), 0); err != nil {
			t.Fatal(err)
		}
		cn := dialRaw(t, addr)
		defer cn.Close()
		sent := sendReads(t, cn, big, 1000, 500)
		time.Sleep(time.Second)
		honest(t, fmt.Sprintf("while a reader ignores the replies to %d READs of 1 MiB", sent))
		held, _, _ := inflight(t)
		t.Logf("NFS bytes in flight with a slow reader: %.1f MiB", held/(1<<20))
		if held > shareMiB<<20 {
			t.Errorf("a slow reader holds %.1f MiB in flight; want at most its share of %d MiB", held/(1<<20), shareMiB)
		}
		// The slow reader holds at most its share (then the node stops
		// reading it), on top of what the idle connections left.
		checkRSS("with a slow reader", idleLimitMiB+shareMiB+slackMiB)
	})

	t.Run("many slow readers", func(t *testing.T) {
		// 20 connections that each send 64 READs of 1 MiB and read no
		// reply: 1280 MiB asked for, the budget held at most. Once a
		// connection waits for it, those whose peers have taken nothing for
		// 5 s are closed, so an honest client is still served.
		if big == nil {
			t.Fatal("the slow reader's subtest made no file to read")
		}
		const readers, reads = 20, 64
		for i := range readers {
			cn := dialRaw(t, addr)
			defer cn.Close()
			sendReads(t, cn, big, uint32(10_000+i*reads), reads)
		}
		time.Sleep(2 * time.Second)
		held, limit, _ := inflight(t)
		t.Logf("NFS bytes in flight with %d slow readers: %.1f MiB of a budget of %.0f MiB", readers, held/(1<<20), limit/(1<<20))
		if limit != budgetMiB<<20 || held > limit {
			t.Errorf("%d slow readers hold %.1f MiB in flight; want at most the budget of %d MiB (reported %.0f MiB)", readers, held/(1<<20), budgetMiB, limit/(1<<20))
		}
		checkRSS(fmt.Sprintf("with %d slow readers", readers), idleLimitMiB+budgetMiB+slackMiB)
		honest(t, fmt.Sprintf("while %d readers ignore the replies to %d READs of 1 MiB each", readers, reads))
		_, _, closed := inflight(t)
		t.Logf("connections closed for stalling while holding memory: %.0f", closed)
		checkRSS(fmt.Sprintf("with %d slow readers, after an honest client", readers), idleLimitMiB+budgetMiB+slackMiB)
	})

	t.Run("forged and replayed handles", func(t *testing.T) {
		gc := goClient(t, addr)
		root := iopMount(t, gc)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		flipped := append([]byte(nil), root...)
		flipped[len(flipped)-1] ^= 1
		longer := append(append([]byte(nil), root...), 0)
		random := make([]byte, len(root))
		_, _ = rand.Read(random)
		for name, h := range map[string][]byte{"MAC bit flipped": flipped, "random bytes": random, "empty": {}, "one byte longer": longer} {
			if _, st, err := gc.Getattr(ctx, h); err != nil || st != nfsv3.NFS3ERR_BADHANDLE {
				t.Errorf("GETATTR with a forged handle (%s): status %d, %v; want BADHANDLE (%d)", name, st, err, nfsv3.NFS3ERR_BADHANDLE)
			}
		}
		mode := uint32(0o644)
		cr, st, err := gc.Create(ctx, root, "doomed", nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("CREATE doomed: status %d, %v", st, err)
		}
		doomed := nfsclient.Handle(cr.Obj)
		if _, st, err := gc.Remove(ctx, root, "doomed"); err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("REMOVE doomed: status %d, %v", st, err)
		}
		if _, st, err := gc.Getattr(ctx, doomed); err != nil || st != nfsv3.NFS3ERR_STALE {
			t.Errorf("GETATTR with the handle of a removed file: status %d, %v; want STALE (%d)", st, err, nfsv3.NFS3ERR_STALE)
		}
		if _, st, err := gc.Write(ctx, doomed, 0, []byte("x")); err != nil || st != nfsv3.NFS3ERR_STALE {
			t.Errorf("WRITE with the handle of a removed file: status %d, %v; want STALE", st, err)
		}
		honest(t, "after forged and replayed handles")
	})

	t.Run("tunnel without a valid client certificate", func(t *testing.T) {
		other := selfSignedCert(t)
		for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "a certificate of another CA": {other}} {
			err := tunnelUpgrade(n.AdminAddr, certs)
			if err == nil {
				t.Errorf("tunnel with %s: the node upgraded the connection; want it refused", name)
			} else {
				t.Logf("tunnel with %s: refused: %v", name, err)
			}
		}
		honest(t, "after tunnels without valid certificates")
	})

	t.Run("client outside the export's networks", func(t *testing.T) {
		// From 127.0.0.77, which "narrow" allows, a client gets the handle;
		// from 127.0.0.1 MNT and every call with that handle are refused.
		inside := dialFrom(t, "127.0.0.77", addr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h, mst, err := inside.Mount(ctx, "/narrow")
		if err != nil || mst != mount.MNT3_OK {
			t.Fatalf("MNT /narrow from 127.0.0.77: status %d, %v", mst, err)
		}
		outside := dialFrom(t, "127.0.0.1", addr)
		if _, mst, err := outside.Mount(ctx, "/narrow"); err != nil || mst != mount.MNT3ERR_ACCES {
			t.Errorf("MNT /narrow from 127.0.0.1: status %d, %v; want MNT3ERR_ACCES", mst, err)
		}
		if _, st, err := outside.Getattr(ctx, h); err != nil || st != nfsv3.NFS3ERR_ACCES {
			t.Errorf("GETATTR of narrow's root from 127.0.0.1: status %d, %v; want ACCES", st, err)
		}
		mode := uint32(0o644)
		if _, st, err := outside.Create(ctx, h, "intruder", nfsclient.Guarded(nfsclient.Set{Mode: &mode})); err != nil || st != nfsv3.NFS3ERR_ACCES {
			t.Errorf("CREATE in narrow from 127.0.0.1: status %d, %v; want ACCES", st, err)
		}
		if _, st, err := inside.Lookup(ctx, h, "intruder"); err != nil || st != nfsv3.NFS3ERR_NOENT {
			t.Errorf("LOOKUP intruder from 127.0.0.77: status %d, %v; want NOENT (nothing was created)", st, err)
		}
	})

	t.Run("root on a root-squashed export", func(t *testing.T) {
		gc := goClient(t, addr) // AUTH_SYS uid 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		root, mst, err := gc.Mount(ctx, "/squashed")
		if err != nil || mst != mount.MNT3_OK {
			t.Fatalf("MNT /squashed: status %d, %v", mst, err)
		}
		a, st, err := gc.Getattr(ctx, root)
		if err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("GETATTR of squashed's root: status %d, %v", st, err)
		}
		mode := uint32(0o644)
		cr, st, err := gc.Create(ctx, root, "by-root", nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
		switch {
		case err != nil:
			t.Fatal(err)
		case a.Mode&0o002 == 0 && st != nfsv3.NFS3ERR_ACCES:
			t.Errorf("CREATE by squashed root in a root directory of mode %o owned by %d: status %d; want ACCES", a.Mode, a.Uid, st)
		case st == nfsv3.NFS3_OK:
			fa, ok := cr.ObjAttributes.(*nfsv3.PostOpAttr_TRUE)
			if !ok || fa.Attributes.Uid != fsstate.AnonID {
				t.Errorf("CREATE by squashed root: owner %+v; want the anonymous uid %d", cr.ObjAttributes, fsstate.AnonID)
			}
		}
		uid := uint32(0)
		if _, st, err := gc.Setattr(ctx, root, nfsclient.Set{UID: &uid, Mode: &mode}, nil); err != nil || (st != nfsv3.NFS3ERR_PERM && st != nfsv3.NFS3ERR_ACCES) {
			t.Errorf("SETATTR of squashed's root by squashed root: status %d, %v; want PERM", st, err)
		}
	})

	honest(t, "after every attack")
	time.Sleep(2 * time.Second)
	checkRSS("after every attack", idleLimitMiB+budgetMiB+slackMiB)
	if held, _, _ := inflight(t); held != 0 {
		t.Errorf("%.0f bytes still in flight after every attacker left", held)
	}
}

// sendReads sends n READs of 1 MiB of the file h on cn and reads no reply;
// it stops when the node stops reading (the kernel's buffers are full). It
// returns how many it sent.
func sendReads(t *testing.T, cn net.Conn, h []byte, xid uint32, n int) int {
	t.Helper()
	enc, err := nfsclient.NewClient(&discardConn{}, nfsclient.Options{Machine: "slow-reader"})
	if err != nil {
		t.Fatal(err)
	}
	_ = cn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := range n {
		raw, err := enc.EncodeCall(xid+uint32(i), nfsclient.NFSProgram, nfsclient.NFSVersion, nfsclient.ProcRead,
			&nfsv3.Read3args{File: nfsv3.NfsFh3{Data: h}, Offset: 0, Count: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cn.Write(raw); err != nil {
			return i // the node stopped reading from us: fine
		}
	}
	return n
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition; the test fails if it is missing.
func metricValue(t *testing.T, exposition, name string) float64 {
	t.Helper()
	v, ok := metricSample(exposition, name)
	if !ok {
		t.Fatalf("no metric %s in /metrics", name)
	}
	return v
}

// honestClient mounts /data, writes a small file and reads it back.
func honestClient(addr, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gc, err := nfsclient.Dial(ctx, addr, nfsclient.Options{Machine: "honest"})
	if err != nil {
		return err
	}
	defer gc.Close()
	root, mst, err := gc.Mount(ctx, "/data")
	if err != nil || mst != mount.MNT3_OK {
		return fmt.Errorf("MNT /data: status %d, %v", mst, err)
	}
	mode := uint32(0o644)
	cr, st, err := gc.Create(ctx, root, name, nfsclient.Guarded(nfsclient.Set{Mode: &mode}))
	if err != nil || st != nfsv3.NFS3_OK {
		return fmt.Errorf("CREATE %s: status %d, %v", name, st, err)
	}
	h := nfsclient.Handle(cr.Obj)
	data := content(name, 4096)
	if err := gc.WriteFile(ctx, h, data, 0); err != nil {
		return err
	}
	got, err := gc.ReadFile(ctx, h, 0, len(data))
	if err != nil || !bytes.Equal(got, data) {
		return fmt.Errorf("READ %s: %d bytes, %v", name, len(got), err)
	}
	return nil
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// raiseNoFile raises this process's open-file limit to at least n (the
// node inherits the limit the test started with, which holds its side).
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max < n {
		rl.Max = n // root may raise the hard limit
	}
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("raise the open-file limit to %d: %v (run as root, or ulimit -n %d)", n, err, n)
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	cn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cn
}

// dialFrom connects an NFS client from a chosen loopback address.
func dialFrom(t *testing.T, local, addr string) *nfsclient.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	cn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	gc, err := nfsclient.NewClient(cn, nfsclient.Options{Machine: "from-" + local})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	return gc
}

// nullCall is a complete NFS NULL call record (AUTH_NONE).
func nullCall(xid uint32) []byte {
	var b []byte
	for _, w := range []uint32{xid, 0, 2, nfsclient.NFSProgram, 3, 0, 0, 0, 0, 0} {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))|1<<31), b...)
}

func rawNull(cn net.Conn, xid uint32, timeout time.Duration) error {
	_ = cn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := cn.Write(nullCall(xid)); err != nil {
		return err
	}
	return readReply(cn, xid, timeout)
}

// readReply reads records until the reply with xid comes.
func readReply(cn net.Conn, xid uint32, timeout time.Duration) error {
	_ = cn.SetReadDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(cn)
	for i := 0; i < 100; i++ {
		rec, err := nfsclient.ReadRecord(r, 1<<20)
		if err != nil {
			return err
		}
		if len(rec) >= 8 && binary.BigEndian.Uint32(rec) == xid && binary.BigEndian.Uint32(rec[4:]) == 1 {
			return nil
		}
	}
	return errors.New("no reply with the xid")
}

func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectClosed waits for the peer to close cn.
func expectClosed(cn net.Conn, timeout time.Duration) error {
	_ = cn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	for {
		_, err := cn.Read(buf)
		if err == nil {
			continue
		}
		if closed(err) {
			return nil
		}
		return fmt.Errorf("connection not closed by the node: %w", err)
	}
}

// discardConn is a net.Conn that swallows writes and has nothing to read,
// for a client used only to encode calls.
type discardConn struct{ net.Conn }

func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// tunnelUpgrade tries the tunnel upgrade on a node's admin port with the
// given client certificates (the server's certificate is not checked: the
// point is whether the node checks ours).
func tunnelUpgrade(adminAddr string, certs []tls.Certificate) error {
	cn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", adminAddr,
		&tls.Config{InsecureSkipVerify: true, Certificates: certs})
	if err != nil {
		return err
	}
	defer cn.Close()
	_ = cn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "https://"+adminAddr+"/v1/tunnel", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", tunnel.Upgrade)
	if err := req.Write(cn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(cn), req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	return fmt.Errorf("answered %s", resp.Status)
}

// selfSignedCert makes a client certificate no cluster CA signed.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
