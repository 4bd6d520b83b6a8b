package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"keel/internal/config"
)

const mib = 1 << 20

// readServer serves READ-like calls (procedure 6: Count bytes of data,
// held until the reply is written, as nfs3 holds a pooled buffer) and
// counts the bytes its procedures hold: live is what the memory bound must
// cover, whatever the accounting says.
type readServer struct {
	*Server
	addr   string
	live   atomic.Int64 // data bytes handed to replies not yet written
	peak   atomic.Int64
	served atomic.Int64
}

func newReadServer(t *testing.T, budget, share int64, stall time.Duration) *readServer {
	t.Helper()
	rs := &readServer{}
	svc := func(ctx context.Context, _, proc uint32, args io.ReadCloser, newReturnValue func(int) io.Writer) (rpcv2.AcceptedReplyData, error) {
		var a nfsv3.Read3args
		if _, err := a.ReadFrom(args); err != nil {
			return nil, err
		}
		rs.served.Add(1)
		data := make([]byte, a.Count)
		n := rs.live.Add(int64(len(data)))
		for p := rs.peak.Load(); n > p && !rs.peak.CompareAndSwap(p, n); p = rs.peak.Load() {
		}
		AfterReply(ctx, func() { rs.live.Add(-int64(len(data))) })
		res := &nfsv3.Read3res_NFS3_OK{Resok: nfsv3.Read3resok{FileAttributes: &nfsv3.PostOpAttr_FALSE{}, Count: a.Count, Eof: true, Data: data}}
		if _, err := res.WriteTo(newReturnValue(res.GetEncodedSizeBytes())); err != nil {
			return nil, err
		}
		return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
	}
	rs.Server = &Server{
		Programs:             map[uint32]Service{nfsv3.NFS_PROGRAM_PROGRAM_NUMBER: svc},
		MaxInFlightBytes:     budget,
		MaxConnInFlightBytes: share,
		StallTimeout:         stall,
		ReplyBound: func(_, _, proc uint32, args []byte) int {
			if len(args) >= 24 {
				return int(binary.BigEndian.Uint32(args[20:])) + 512 // fh of 8 bytes, offset, count
			}
			return MaxReplyBound
		},
		Metrics: &Metrics{
			InFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "inflight"}),
			Waits:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "waits"}, []string{"limit"}),
			StalledClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "closed"}),
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rs.Serve(ln) }()
	t.Cleanup(rs.Close)
	rs.addr = ln.Addr().String()
	return rs
}

// readCall is a READ call record asking for count bytes.
func readCall(xid, count uint32) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 4))
	msg := rpcv2.RpcMsg{Xid: xid, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{Rpcvers: 2, Prog: nfsv3.NFS_PROGRAM_PROGRAM_NUMBER,
		Vers: 3, Proc: 6, Cred: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
	_, _ = msg.WriteTo(&b)
	a := nfsv3.Read3args{File: nfsv3.NfsFh3{Data: make([]byte, 8)}, Count: count}
	_, _ = a.WriteTo(&b)
	rec := b.Bytes()
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|0x80000000)
	return rec
}

// slowReader connects with a small receive buffer and sends n READs of
// 1 MiB without ever reading a reply; the writes go on in the background
// until the server stops reading (or the connection closes).
func slowReader(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		for i := range n {
			if _, err := c.Write(readCall(uint32(i+1), mib)); err != nil {
				return
			}
		}
	}()
	return c
}

// settle waits until what the server holds stops growing (or limit).
func (rs *readServer) settle(limit time.Duration) {
	last, since := int64(-1), time.Now()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if h := rs.InFlightBytes(); h != last {
			last, since = h, time.Now()
		} else if time.Since(since) > 700*time.Millisecond {
			return
		}
	}
}

// honestRead sends one READ of count bytes on a new connection and reads
// its reply, within timeout.
func honestRead(addr string, count uint32, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(readCall(99, count)); err != nil {
		return err
	}
	rec, err := ReadRecord(bufio.NewReader(c), 2*mib)
	if err != nil {
		return fmt.Errorf("no reply to an honest READ within %s: %w", timeout, err)
	}
	if len(rec) < int(count) || binary.BigEndian.Uint32(rec) != 99 {
		return fmt.Errorf("honest READ: a reply of %d bytes", len(rec))
	}
	return nil
}

// A client that sends READs of 1 MiB and never reads the replies makes
// the server hold at most its connection's share (then the server stops
// reading it); another client is served at once meanwhile.
func TestSlowReaderHoldsAtMostItsShare(t *testing.T) {
	const share = 8 * mib
	rs := newReadServer(t, 256*mib, share, time.Minute)
	slowReader(t, rs.addr, 200)
	rs.settle(10 * time.Second)
	held, peak := rs.InFlightBytes(), rs.peak.Load()
	t.Logf("slow reader: %d READs served, %.1f MiB charged, %.1f MiB of data held at most", rs.served.Load(), float64(held)/mib, float64(peak)/mib)
	if held > share || peak > share {
		t.Fatalf("one slow reader holds %d bytes charged, %d bytes of data at the peak; want at most its share of %d", held, peak, share)
	}
	if held < share/2 {
		t.Fatalf("the slow reader holds only %d bytes: the test did not fill its share", held)
	}
	if served := rs.served.Load(); served >= 200 {
		t.Fatalf("the server ran all %d READs of a client that reads nothing: it did not stop reading it", served)
	}
	if got := testutil.ToFloat64(rs.Metrics.InFlightBytes); int64(got) != rs.InFlightBytes() {
		t.Errorf("in-flight gauge %v, accounted %d", got, rs.InFlightBytes())
	}
	if w := testutil.ToFloat64(rs.Metrics.Waits.WithLabelValues("connection")); w < 1 {
		t.Errorf("waits for the connection's share: %v; want at least 1", w)
	}
	start := time.Now()
	if err := honestRead(rs.addr, mib, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("an honest READ of 1 MiB on another connection took %s", time.Since(start).Round(time.Millisecond))
}

// Many slow readers together hold at most the server-wide budget.
func TestManySlowReadersStayUnderTheBudget(t *testing.T) {
	const budget, share = 24 * mib, 8 * mib
	rs := newReadServer(t, budget, share, time.Minute) // no peer is closed for stalling here
	for range 6 {
		slowReader(t, rs.addr, 100)
	}
	rs.settle(15 * time.Second)
	held, peak := rs.InFlightBytes(), rs.peak.Load()
	t.Logf("6 slow readers: %d READs served, %.1f MiB charged, %.1f MiB of data held at most", rs.served.Load(), float64(held)/mib, float64(peak)/mib)
	if held > budget || peak > budget {
		t.Fatalf("6 slow readers hold %d bytes charged, %d of data at the peak; want at most the budget of %d", held, peak, budget)
	}
	if held < budget-2*share {
		t.Fatalf("the slow readers hold only %d bytes: the test did not reach the budget", held)
	}
	if w := testutil.ToFloat64(rs.Metrics.Waits.WithLabelValues("server")); w < 1 {
		t.Errorf("waits for the server-wide budget: %v; want at least 1", w)
	}
}

// When slow readers hold the whole budget, those whose peers have not
// taken a byte for the stall timeout are closed, and an honest client is
// served within about that time; everything they held is given back.
func TestHonestClientServedWhileSlowReadersHoldTheBudget(t *testing.T) {
	const budget, share, stall = 24 * mib, 8 * mib, 500 * time.Millisecond
	rs := newReadServer(t, budget, share, stall)
	var slow []net.Conn
	for range 6 {
		slow = append(slow, slowReader(t, rs.addr, 100))
	}
	// Wait until they fill the budget (the slow readers that then wait for
	// it close the stalled ones themselves, a stall timeout later).
	full := func() bool {
		return rs.InFlightBytes() > budget-2*mib && testutil.ToFloat64(rs.Metrics.Waits.WithLabelValues("server")) >= 1
	}
	for deadline := time.Now().Add(10 * time.Second); !full(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow readers hold only %d bytes: the test did not reach the budget", rs.InFlightBytes())
		}
	}
	start := time.Now()
	if err := honestRead(rs.addr, mib, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("an honest READ of 1 MiB with the budget held took %s; %v stalled connections closed",
		time.Since(start).Round(time.Millisecond), testutil.ToFloat64(rs.Metrics.StalledClosed))
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(rs.Metrics.StalledClosed) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no stalled connection was closed while others waited for the budget")
		}
	}
	if peak := rs.peak.Load(); peak > budget {
		t.Errorf("data held at the peak: %d bytes; want at most the budget of %d", peak, budget)
	}
	for _, c := range slow {
		c.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); rs.InFlightBytes() != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if h := rs.InFlightBytes(); h != 0 {
		t.Fatalf("%d bytes still charged after every connection closed", h)
	}
}

// A client that pipelines far more than its share (READs of 1 MiB, and
// WRITE-sized records of 1 MiB) and reads its replies slowly gets every
// reply: a connection waiting for its share never blocks the writing of
// its own replies.
func TestPipelinedCallsBeyondTheShareAllComplete(t *testing.T) {
	rs := newReadServer(t, 0, 1, time.Minute) // the smallest share: one largest call
	c, err := net.Dial("tcp", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const n = 60
	go func() {
		for i := range n {
			rec := readCall(uint32(i+1), mib)
			if i%2 == 1 { // a 1 MiB record: the call's arguments and 1 MiB of trailing bytes
				body := append(rec[4:], make([]byte, mib)...)
				rec = append(binary.BigEndian.AppendUint32(nil, uint32(len(body))|0x80000000), body...)
			}
			if _, err := c.Write(rec); err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for i := range n {
		rec, err := ReadRecord(r, 2*mib)
		if err != nil {
			t.Fatalf("reply %d of %d: %v (share %d bytes, %d charged)", i+1, n, err, rs.connLimit(DefaultMaxRecord), rs.InFlightBytes())
		}
		if len(rec) < mib {
			t.Fatalf("reply %d: %d bytes", i+1, len(rec))
		}
		if i%10 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Connections that promise records and send a little of them (a 2 MiB
// record and 100 bytes, 1 KiB and 10 bytes) hold nothing of the budget:
// their bytes wait in the connection's read buffer.
func TestHalfOpenRecordsHoldNoBudget(t *testing.T) {
	rs := newReadServer(t, 0, 0, time.Minute)
	for i := range 100 {
		c, err := net.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := binary.BigEndian.AppendUint32(nil, 0x80000000|2<<20)
		b = append(b, make([]byte, 100)...)
		if i%2 == 1 {
			b = append(binary.BigEndian.AppendUint32(nil, 0x80000400), make([]byte, 10)...)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if h := rs.InFlightBytes(); h != 0 {
		t.Fatalf("100 half-open records hold %d bytes of the budget; want 0", h)
	}
	if err := honestRead(rs.addr, mib, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if h := rs.InFlightBytes(); h != 0 {
		t.Fatalf("%d bytes charged after an honest READ was answered; want 0", h)
	}
}

// The config's floor for the NFS bounds is what one call needs here.
func TestMinConnInFlightHoldsTheLargestCall(t *testing.T) {
	if largest := int64(max(DefaultMaxRecord, bigRecord)) + MaxReplyBound; largest > MinConnInFlightBytes {
		t.Fatalf("the largest call holds %d bytes, more than MinConnInFlightBytes (%d)", largest, MinConnInFlightBytes)
	}
	if config.MinNFSInflight != MinConnInFlightBytes || config.DefaultNFSInflight != DefaultMaxInFlightBytes {
		t.Fatalf("config's NFS limits (%d, %d) differ from rpc's (%d, %d)", config.MinNFSInflight, config.DefaultNFSInflight, MinConnInFlightBytes, DefaultMaxInFlightBytes)
	}
}
