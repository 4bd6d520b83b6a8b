package bench

// What does nfs-cp ask of a server, and what does the server promise? The
// probe runs a small nfs-cp through a TCP proxy that reads the ONC RPC
// records going by: the stable_how of each WRITE call, the COMMIT calls,
// and the committed field of each WRITE reply.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	nfsProgram  = 100003
	procWrite   = 7
	procCommit  = 21
	recordKeep  = 1024     // bytes of each record the probe parses
	maxFragment = 64 << 20 // larger record fragments end the proxy's parsing (the bytes still go through)
)

// ProbeResult counts what one nfs-cp through the proxy sent and got.
type ProbeResult struct {
	Bytes    uint64         `json:"bytes"`           // size of the file copied in
	Writes   map[string]int `json:"writes"`          // WRITE calls by the stable_how asked
	Commits  int            `json:"commits"`         // COMMIT calls
	Answered map[string]int `json:"write_replies"`   // WRITE replies (NFS3_OK) by the committed level given
	Error    string         `json:"error,omitempty"` // why the probe did not run
}

// Text is the probe in one line, e.g. "4 WRITE UNSTABLE, 1 COMMIT; WRITE
// replies: 4 FILE_SYNC".
func (p ProbeResult) Text() string {
	if p.Error != "" {
		return "probe failed: " + p.Error
	}
	return fmt.Sprintf("%s, %d COMMIT; WRITE replies: %s", countsText(p.Writes, "WRITE "), p.Commits, countsText(p.Answered, ""))
}

// countsText lists counts by name, FILE_SYNC, DATA_SYNC, UNSTABLE order.
func countsText(m map[string]int, prefix string) string {
	if len(m) == 0 {
		return "0 " + strings.TrimSpace(prefix)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%d %s%s", m[k], prefix, k))
	}
	return strings.Join(parts, ", ")
}

var stableNames = map[uint32]string{0: "UNSTABLE", 1: "DATA_SYNC", 2: "FILE_SYNC"}

func stableName(v uint32) string {
	if s, ok := stableNames[v]; ok {
		return s
	}
	return fmt.Sprintf("stable_how %d", v)
}

// xdrReader reads XDR items from a record prefix; reading past its end
// sets bad.
type xdrReader struct {
	b   []byte
	bad bool
}

func (r *xdrReader) u32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *xdrReader) skip(n int) {
	n = (n + 3) &^ 3
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return
	}
	r.b = r.b[n:]
}

// opaque skips a variable-length opaque (length, then padded bytes).
func (r *xdrReader) opaque() { r.skip(int(r.u32())) }

// rpcCall is what the probe takes from a call record.
type rpcCall struct {
	xid, prog, vers, proc uint32
	stable                uint32 // a WRITE's stable_how
}

// parseCall reads an ONC RPC call (RFC 5531) from the start of a record
// and, for an NFSv3 WRITE, its stable_how.
func parseCall(rec []byte) (rpcCall, bool) {
	r := &xdrReader{b: rec}
	c := rpcCall{xid: r.u32()}
	if r.u32() != 0 || r.u32() != 2 { // CALL, RPC version 2
		return c, false
	}
	c.prog, c.vers, c.proc = r.u32(), r.u32(), r.u32()
	r.u32() // credential flavor
	r.opaque()
	r.u32() // verifier flavor
	r.opaque()
	if c.prog == nfsProgram && c.vers == 3 && c.proc == procWrite {
		r.opaque() // file handle
		r.skip(8)  // offset
		r.u32()    // count
		c.stable = r.u32()
	}
	return c, !r.bad
}

// parseWriteReply reads an NFSv3 WRITE reply: its xid, and if it succeeded
// (accepted, NFS3_OK), the committed level the server gave.
func parseWriteReply(rec []byte) (xid, committed uint32, ok bool) {
	r := &xdrReader{b: rec}
	xid = r.u32()
	if r.u32() != 1 || r.u32() != 0 { // REPLY, MSG_ACCEPTED
		return xid, 0, false
	}
	r.u32() // verifier flavor
	r.opaque()
	accept := r.u32()
	status := r.u32()
	if accept != 0 || status != 0 { // SUCCESS, NFS3_OK
		return xid, 0, false
	}
	if r.u32() == 1 { // pre_op_attr: size, mtime, ctime
		r.skip(24)
	}
	if r.u32() == 1 { // post_op_attr: fattr3
		r.skip(84)
	}
	r.u32() // count
	committed = r.u32()
	return xid, committed, !r.bad
}

// pipeRecords copies src to dst unchanged and hands the first recordKeep
// bytes of each complete record to onRecord. A fragment larger than
// maxFragment ends the parsing: the rest is copied as it comes.
func pipeRecords(dst io.Writer, src io.Reader, onRecord func([]byte)) error {
	var hdr [4]byte
	var rec []byte
	buf := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n, last := int(h&0x7fffffff), h&0x80000000 != 0
		if _, err := dst.Write(hdr[:]); err != nil {
			return err
		}
		if n > maxFragment {
			_, err := io.Copy(dst, src)
			return err
		}
		for n > 0 {
			k, err := io.ReadFull(src, buf[:min(n, len(buf))])
			if len(rec) < recordKeep {
				rec = append(rec, buf[:min(k, recordKeep-len(rec))]...)
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			if err != nil {
				return err
			}
			n -= k
		}
		if last {
			onRecord(rec)
			rec = rec[:0]
		}
	}
}

// probeCounter tallies the records of every connection through a probe.
type probeCounter struct {
	mu       sync.Mutex
	writes   map[string]int
	commits  int
	answered map[string]int
	pending  map[uint32]bool // xids of WRITE calls not yet answered
}

func newProbeCounter() *probeCounter {
	return &probeCounter{writes: map[string]int{}, answered: map[string]int{}, pending: map[uint32]bool{}}
}

func (p *probeCounter) call(rec []byte) {
	c, ok := parseCall(rec)
	if !ok || c.prog != nfsProgram || c.vers != 3 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch c.proc {
	case procWrite:
		p.writes[stableName(c.stable)]++
		p.pending[c.xid] = true
	case procCommit:
		p.commits++
	}
}

func (p *probeCounter) reply(rec []byte) {
	if len(rec) < 4 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	xid := binary.BigEndian.Uint32(rec)
	if !p.pending[xid] {
		return
	}
	delete(p.pending, xid)
	if _, committed, ok := parseWriteReply(rec); ok {
		p.answered[stableName(committed)]++
	}
}

func (p *probeCounter) result(bytes uint64) ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeResult{Bytes: bytes, Writes: p.writes, Commits: p.commits, Answered: p.answered}
}

// probeProxy forwards every connection to its listener to upstream,
// counting what goes by.
type probeProxy struct {
	ln       net.Listener
	upstream string
	count    *probeCounter
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

// startProbeProxy listens on a free loopback port and forwards to upstream.
func startProbeProxy(upstream string, count *probeCounter) (*probeProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: probe proxy: %w", err)
	}
	p := &probeProxy{ln: ln, upstream: upstream, count: count}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *probeProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *probeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { _ = pipeRecords(up, c, p.count.call); up.Close() })
		p.wg.Go(func() { _ = pipeRecords(c, up, p.count.reply); c.Close() })
	}
}

// close stops the proxy and every connection through it.
func (p *probeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// probeNFSCp copies the local file src (of size bytes) to name on the
// server with nfs-cp through counting proxies in front of its NFS and
// MOUNT addresses.
func probeNFSCp(ctx context.Context, src string, size uint64, nfsAddr, mountAddr, name string) ProbeResult {
	count := newProbeCounter()
	nfsProxy, err := startProbeProxy(nfsAddr, count)
	if err != nil {
		return ProbeResult{Error: err.Error()}
	}
	defer nfsProxy.close()
	mountPort := nfsProxy.port()
	if mountAddr != nfsAddr {
		mountProxy, err := startProbeProxy(mountAddr, count)
		if err != nil {
			return ProbeResult{Error: err.Error()}
		}
		defer mountProxy.close()
		mountPort = mountProxy.port()
	}
	if _, err := runNFSCp(ctx, src, nfsURL("127.0.0.1", nfsProxy.port(), mountPort, name), size); err != nil {
		return ProbeResult{Error: err.Error()}
	}
	r := count.result(size)
	if len(r.Writes) == 0 {
		r.Error = "no WRITE call seen"
	}
	return r
}

var errNoNFSCp = errors.New("bench: nfs-cp not found: apt-get install libnfs-utils")
