package bench

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// xdr builds XDR words and opaques for hand-made records.
type xdr []byte

func (x xdr) u32(vs ...uint32) xdr {
	for _, v := range vs {
		x = binary.BigEndian.AppendUint32(x, v)
	}
	return x
}

func (x xdr) opaque(b []byte) xdr {
	x = x.u32(uint32(len(b)))
	x = append(x, b...)
	return append(x, make([]byte, (4-len(b)%4)%4)...)
}

// call is an RPC call header with an AUTH_SYS-like credential of 20 bytes.
func call(xid, prog, vers, proc uint32) xdr {
	return xdr(nil).u32(xid, 0, 2, prog, vers, proc, 1).opaque(make([]byte, 20)).u32(0).opaque(nil)
}

// writeCall is an NFSv3 WRITE call with a 5-byte file handle.
func writeCall(xid, stable uint32) xdr {
	return call(xid, nfsProgram, 3, procWrite).opaque([]byte("hello")).u32(0, 4096, 1024, stable).opaque(make([]byte, 1024))
}

// writeReply is an accepted NFS3_OK WRITE reply, with or without attributes.
func writeReply(xid, committed uint32, attrs bool) xdr {
	x := xdr(nil).u32(xid, 1, 0, 0).opaque(nil).u32(0, 0) // REPLY, ACCEPTED, verf AUTH_NONE, SUCCESS, NFS3_OK
	if attrs {
		x = x.u32(1).u32(make([]uint32, 6)...).u32(1).u32(make([]uint32, 21)...)
	} else {
		x = x.u32(0, 0)
	}
	return x.u32(1024, committed, 0xdead, 0xbeef)
}

func TestParseCall(t *testing.T) {
	c, ok := parseCall(writeCall(77, 0))
	if !ok || c.xid != 77 || c.prog != nfsProgram || c.vers != 3 || c.proc != procWrite || c.stable != 0 {
		t.Errorf("WRITE UNSTABLE: %+v %t", c, ok)
	}
	if c, ok := parseCall(writeCall(78, 2)); !ok || c.stable != 2 {
		t.Errorf("WRITE FILE_SYNC: %+v %t", c, ok)
	}
	if c, ok := parseCall(call(79, nfsProgram, 3, procCommit).u32(0, 0, 0, 0, 0)); !ok || c.proc != procCommit {
		t.Errorf("COMMIT: %+v %t", c, ok)
	}
	if _, ok := parseCall(writeReply(80, 2, false)); ok {
		t.Error("a reply parsed as a call")
	}
	if _, ok := parseCall(writeCall(81, 0)[:50]); ok {
		t.Error("a truncated WRITE parsed")
	}
}

func TestParseWriteReply(t *testing.T) {
	for _, attrs := range []bool{false, true} {
		xid, committed, ok := parseWriteReply(writeReply(9, 2, attrs))
		if !ok || xid != 9 || committed != 2 {
			t.Errorf("attrs %t: %d %d %t; want 9, FILE_SYNC", attrs, xid, committed, ok)
		}
	}
	failed := xdr(nil).u32(9, 1, 0, 0).opaque(nil).u32(0, 28) // NFS3ERR_NOSPC
	if _, _, ok := parseWriteReply(failed); ok {
		t.Error("a failed WRITE gave a committed level")
	}
}

// mark frames payload as one record in fragments of at most frag bytes.
func mark(payload []byte, frag int) []byte {
	var out []byte
	for len(payload) > 0 {
		n := min(frag, len(payload))
		h := uint32(n)
		if n == len(payload) {
			h |= 1 << 31
		}
		out = binary.BigEndian.AppendUint32(out, h)
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

func TestPipeRecords(t *testing.T) {
	a, b := writeCall(1, 0), call(2, nfsProgram, 3, procCommit).u32(0, 0, 0, 0, 0)
	stream := append(mark(a, 100), mark(b, 1<<20)...)
	var dst bytes.Buffer
	var got [][]byte
	err := pipeRecords(&dst, bytes.NewReader(stream), func(rec []byte) { got = append(got, bytes.Clone(rec)) })
	if err != io.EOF {
		t.Errorf("pipeRecords ended with %v, want EOF", err)
	}
	if !bytes.Equal(dst.Bytes(), stream) {
		t.Error("the bytes copied differ from those read")
	}
	if len(got) != 2 || !bytes.Equal(got[0], a[:recordKeep]) || !bytes.Equal(got[1], b) {
		t.Errorf("records %d; want the first %d bytes of a fragmented WRITE, then a COMMIT", len(got), recordKeep)
	}
}

func TestProbeCounter(t *testing.T) {
	p := newProbeCounter()
	p.call(writeCall(1, 0))
	p.call(writeCall(2, 0))
	p.call(call(3, nfsProgram, 3, procCommit).u32(0, 0, 0, 0, 0))
	p.call(call(4, 100005, 3, 1)) // MOUNT: not counted
	p.reply(writeReply(1, 2, true))
	p.reply(writeReply(2, 2, false))
	p.reply(writeReply(2, 0, false)) // no WRITE pending with that xid any more
	r := p.result(4 << 20)
	if got := r.Text(); got != "2 WRITE UNSTABLE, 1 COMMIT; WRITE replies: 2 FILE_SYNC" {
		t.Errorf("Text() = %q", got)
	}
	if got := (ProbeResult{Error: "x"}).Text(); got != "probe failed: x" {
		t.Errorf("Text() of a failed probe = %q", got)
	}
}
