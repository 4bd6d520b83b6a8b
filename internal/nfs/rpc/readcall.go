package rpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// inCall is a call read from a connection and what it holds.
type inCall struct {
	rec        []byte
	recBytes   int64   // charged for rec's memory
	pooled     *[]byte // rec's memory, from records, or nil
	replyBytes int64   // charged for the reply
}

// freeRecord gives back the record's memory and its charge (once the
// procedure has returned: procedures keep no slice of their arguments).
func (ic *inCall) freeRecord(cn *conn) {
	if ic.pooled != nil {
		records.Put(ic.pooled)
		ic.pooled = nil
	}
	ic.rec = nil
	cn.uncharge(ic.recBytes)
	ic.recBytes = 0
}

// finish gives back everything the call holds.
func (ic *inCall) finish(cn *conn) {
	ic.freeRecord(cn)
	cn.uncharge(ic.replyBytes)
	ic.replyBytes = 0
}

// readCall reads one call record. It takes memory for the record only
// once its first bytes are here (up to a read buffer's worth: a client
// that promises a large record and sends little holds nothing but its
// connection's buffer), and charges it, together with a reservation for
// the reply, before taking it.
func (cn *conn) readCall(r *bufio.Reader, limit int) (*inCall, error) {
	ic := &inCall{}
	fail := func(err error) (*inCall, error) {
		cn.readStall.Store(0)
		ic.finish(cn)
		return nil, err
	}
	got := false
	var hdr [4]byte
	for {
		if ic.recBytes > 0 {
			cn.readStall.Store(time.Now().UnixNano())
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || (err == io.EOF && got) {
				return fail(io.ErrUnexpectedEOF)
			}
			return fail(err)
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ 0x80000000)
		if len(ic.rec)+n > limit {
			return fail(fmt.Errorf("rpc: record of more than %d bytes refused", limit))
		}
		got = got || n > 0
		if n > 0 {
			if err := cn.room(r, ic, n); err != nil {
				return fail(err)
			}
			start := len(ic.rec)
			ic.rec = ic.rec[:start+n]
			cn.readStall.Store(time.Now().UnixNano())
			if _, err := io.ReadFull(r, ic.rec[start:]); err != nil {
				return fail(io.ErrUnexpectedEOF)
			}
		}
		cn.readStall.Store(0)
		if h&0x80000000 != 0 {
			if ic.rec == nil {
				ic.rec = []byte{}
			}
			return ic, nil
		}
	}
}

// room makes ic.rec able to take n more bytes: it waits until they start
// arriving, then charges what it allocates (and, for a record's first
// bytes, the reply's reservation) and allocates it.
func (cn *conn) room(r *bufio.Reader, ic *inCall, n int) error {
	need := len(ic.rec) + n
	if cap(ic.rec) >= need {
		return nil
	}
	if ic.recBytes > 0 {
		cn.readStall.Store(time.Now().UnixNano())
	}
	peek, err := r.Peek(min(n, r.Size()))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	var reply int64
	if len(ic.rec) == 0 {
		reply = cn.server.replyBound(peek)
	}
	pooled := len(ic.rec) == 0 && need >= 64<<10 && need <= bigRecord
	size := need
	if pooled {
		size = bigRecord
	}
	if err := cn.charge(int64(size) - ic.recBytes + reply); err != nil {
		return err
	}
	ic.replyBytes += reply
	var buf []byte
	var bp *[]byte
	if pooled {
		bp = records.Get().(*[]byte)
		buf = (*bp)[:0]
	} else {
		buf = make([]byte, 0, size)
	}
	buf = append(buf, ic.rec...)
	if ic.pooled != nil {
		records.Put(ic.pooled)
	}
	ic.rec, ic.pooled, ic.recBytes = buf, bp, int64(size)
	return nil
}

// replyBound is the reply reservation of the call whose record starts
// with b.
func (s *Server) replyBound(b []byte) int64 {
	prog, vers, proc, args, ok := callHeader(b)
	if !ok || s.ReplyBound == nil {
		return MaxReplyBound
	}
	return int64(min(max(s.ReplyBound(prog, vers, proc, args), minReplyBound), MaxReplyBound))
}

// minReplyBound covers a reply that only says no (a rejection, an error).
const minReplyBound = 256

// callHeader parses the start of a call record: program, version,
// procedure and what follows the credentials and verifier.
func callHeader(b []byte) (prog, vers, proc uint32, args []byte, ok bool) {
	word := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v, true
	}
	var w [6]uint32 // xid, msg_type, rpcvers, prog, vers, proc
	for i := range w {
		if w[i], ok = word(); !ok {
			return
		}
	}
	if w[1] != 0 {
		return 0, 0, 0, nil, false
	}
	for range 2 { // credentials, verifier: flavor, opaque body
		if _, ok = word(); !ok {
			return
		}
		var l uint32
		if l, ok = word(); !ok || l > 400 || int(l+3)&^3 > len(b) {
			return 0, 0, 0, nil, false
		}
		b = b[(l+3)&^3:]
	}
	return w[3], w[4], w[5], b, true
}
