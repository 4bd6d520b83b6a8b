package fsstate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// RequestID names one NFS request, for the replicated duplicate request
// cache that makes non-idempotent requests (CREATE, REMOVE, RENAME, …) take
// effect exactly once. A command carrying a RequestID has its Result
// recorded under (Client, XID, Proc) in the same batch as its change; a later
// command with the same RequestID — a retransmission, possibly handled by a
// new leader — is not applied again but answered from the record
// (Result.Replayed). A command with the same key but a different ArgHash is
// a new request (the client reused the xid) and is applied normally,
// replacing the record.
//
// Records are kept for DRCRetention after the command's time and then
// deleted, a few at a time, by later commands that carry a RequestID.
type RequestID struct {
	// Client identifies the client: its address, or its AUTH_SYS machine
	// name and port. At most MaxRequestClient bytes.
	Client  string
	XID     uint32   // RPC transaction id
	Proc    uint32   // NFS procedure number
	ArgHash [16]byte // hash of the procedure's arguments
}

// DRCRetention is how long a recorded reply is kept, measured on the
// commands' own (leader-chosen) clock.
const DRCRetention = Time(10 * time.Minute)

// drcMaxExpire bounds how many expired records one command deletes, so
// that applying never stalls on a backlog.
const drcMaxExpire = 64

// drcRecV is the version byte of a reply record: version, time (8 bytes),
// argument hash (16 bytes), then the Result as EncodeResult writes it.
const drcRecV = 1

const drcRecFixed = 1 + 8 + 16

// replyKey returns r<len:1><client><xid:4><proc:4>.
func replyKey(id *RequestID) []byte {
	k := make([]byte, 0, 2+len(id.Client)+8)
	k = append(k, pReply, byte(len(id.Client)))
	k = append(k, id.Client...)
	k = binary.BigEndian.AppendUint32(k, id.XID)
	return binary.BigEndian.AppendUint32(k, id.Proc)
}

// sortableTime maps t to a uint64 that sorts like t, negative times included.
func sortableTime(t Time) uint64 { return uint64(t) ^ 1<<63 }

// replyTimeKey returns R<time:8><len:1><client><xid:4><proc:4>: the index
// entry of the record under rkey written at time t.
func replyTimeKey(t Time, rkey []byte) []byte {
	k := make([]byte, 0, 9+len(rkey)-1)
	k = binary.BigEndian.AppendUint64(append(k, pReplyTime), sortableTime(t))
	return append(k, rkey[1:]...)
}

// replyRec is a decoded reply record.
type replyRec struct {
	Time    Time
	ArgHash [16]byte
	Result  Result
}

func (r *replyRec) encode() []byte {
	res := EncodeResult(r.Result)
	b := make([]byte, 0, drcRecFixed+len(res))
	b = append(b, drcRecV)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
	b = append(b, r.ArgHash[:]...)
	return append(b, res...)
}

// decodeReplyHead decodes a record's time and hash only.
func decodeReplyHead(b []byte) (replyRec, error) {
	if len(b) < drcRecFixed || b[0] != drcRecV {
		return replyRec{}, fmt.Errorf("%w: reply record of %d bytes", ErrCorrupt, len(b))
	}
	r := replyRec{Time: Time(binary.BigEndian.Uint64(b[1:]))}
	copy(r.ArgHash[:], b[9:drcRecFixed])
	return r, nil
}

func decodeReply(b []byte) (replyRec, error) {
	r, err := decodeReplyHead(b)
	if err != nil {
		return r, err
	}
	if r.Result, err = DecodeResult(b[drcRecFixed:]); err != nil {
		return replyRec{}, fmt.Errorf("reply record: %w", err)
	}
	return r, nil
}

// drcCutoff returns the time before which records made by a command at now
// have expired; ok is false when none can have (now is near the minimum).
func drcCutoff(now Time) (cutoff Time, ok bool) {
	if now < math.MinInt64+DRCRetention {
		return 0, false
	}
	return now - DRCRetention, true
}

// replay returns the recorded Result of request id, if there is one made
// with the same argument hash that has not expired at now.
func (t *txn) replay(id *RequestID, now Time) (Result, bool, error) {
	rk := replyKey(id)
	b, ok, err := t.get(rk)
	if err != nil {
		return Result{}, false, err
	}
	t.replied.key, t.replied.val, t.replied.ok = rk, b, ok
	if !ok {
		return Result{}, false, nil
	}
	rec, err := decodeReply(b)
	if err != nil {
		return Result{}, false, err
	}
	if rec.ArgHash != id.ArgHash {
		return Result{}, false, nil
	}
	if cutoff, ok := drcCutoff(now); ok && rec.Time < cutoff {
		return Result{}, false, nil
	}
	rec.Result.Replayed = true
	return rec.Result, true, nil
}

// recordReply deletes up to drcMaxExpire expired records, then records r
// as the reply to the command's request, replacing any earlier record under
// the same key.
func (t *txn) recordReply(c *Command, r Result) error {
	if err := t.expireReplies(c.Time); err != nil {
		return err
	}
	rk := replyKey(c.Req)
	if old, ok, err := t.replyRecord(rk); err != nil {
		return err
	} else if ok {
		rec, err := decodeReplyHead(old)
		if err != nil {
			return err
		}
		t.del(replyTimeKey(rec.Time, rk))
	}
	r.Skipped, r.Replayed = false, false
	rec := replyRec{Time: c.Time, ArgHash: c.Req.ArgHash, Result: r}
	t.set(rk, rec.encode())
	t.set(replyTimeKey(c.Time, rk), []byte{})
	return nil
}

// replyRecord returns the record under rk: the one replay read, unless the
// command has written or deleted rk since (expireReplies may have).
func (t *txn) replyRecord(rk []byte) ([]byte, bool, error) {
	if _, written := t.points[string(rk)]; !written && len(t.ranges) == 0 && t.replied.key != nil && bytes.Equal(t.replied.key, rk) {
		return t.replied.val, t.replied.ok, nil
	}
	return t.get(rk)
}

// expireReplies deletes the oldest records made before now-DRCRetention,
// at most drcMaxExpire of them.
func (t *txn) expireReplies(now Time) error {
	cutoff, ok := drcCutoff(now)
	if !ok {
		return nil
	}
	lower := []byte{pReplyTime}
	upper := binary.BigEndian.AppendUint64([]byte{pReplyTime}, sortableTime(cutoff))
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return storageErr("expire replies", err)
	}
	var expired [][]byte
	for ok := it.First(); ok && len(expired) < drcMaxExpire; ok = it.Next() {
		expired = append(expired, bytes.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return storageErr("expire replies", err)
	}
	for _, k := range expired {
		if len(k) < 1+8+1+8 || len(k) != 1+8+1+int(k[9])+8 {
			return fmt.Errorf("%w: reply time index key of %d bytes", ErrCorrupt, len(k))
		}
		at := Time(binary.BigEndian.Uint64(k[1:]) ^ 1<<63)
		rk := append([]byte{pReply}, k[9:]...)
		t.del(k)
		// The record under rk is the one this entry indexes unless a newer
		// request replaced it (which also deletes this entry; be safe).
		b, ok, err := t.get(rk)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		rec, err := decodeReplyHead(b)
		if err != nil {
			return err
		}
		if rec.Time == at {
			t.del(rk)
		}
	}
	return nil
}

// LookupReply returns the recorded reply to request id, if the state holds
// one made with the same ArgHash (whatever its age: records are deleted only
// as later requests are applied). The Result has Replayed set. The NFS layer
// uses it to answer a retransmission without proposing it again.
func (s *Store) LookupReply(id RequestID) (res Result, found bool, err error) {
	if len(id.Client) > MaxRequestClient {
		return Result{}, false, nil
	}
	err = s.point(func(r reader) error {
		b, ok, err := get(r, replyKey(&id))
		if err != nil || !ok {
			return err
		}
		rec, err := decodeReply(b)
		if err != nil {
			return err
		}
		if rec.ArgHash != id.ArgHash {
			return nil
		}
		res, found = rec.Result, true
		res.Replayed = true
		return nil
	})
	if err != nil {
		return Result{}, false, err
	}
	return res, found, nil
}
