package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// The client of `keel bench failover`: one goroutine that, through the
// tunnel, creates file i, writes 4 KiB of known content (FILE_SYNC), reads
// it back and compares, then does the same with file i+1, recording each
// operation's start, end and error.

const (
	failoverFileSize = 4 << 10          // bytes written to each file
	opTimeout        = 60 * time.Second // for each NFS call: as long as the tunnel keeps a call it must resend
	dialTimeout      = 10 * time.Second // to connect to the tunnel and mount
	maxOps           = 1 << 20          // the client stops after this many operations whatever happens
	exportPath       = "/data"          // the volume "data" as keel exports it
)

// fileContent is the known content of file i: 4 KiB no other file has.
func fileContent(i int) []byte {
	out := make([]byte, 0, failoverFileSize)
	for block := 0; len(out) < failoverFileSize; block++ {
		sum := sha256.Sum256([]byte("keel bench failover: file " + strconv.Itoa(i) + ", block " + strconv.Itoa(block)))
		out = append(out, sum[:]...)
	}
	return out[:failoverFileSize]
}

// fileName is the name of file i in the export's root directory.
func fileName(i int) string { return fmt.Sprintf("f%06d", i) }

// opRecord is one operation of the client: create file N, write it, read
// it back. N is -1 for a failed attempt to reconnect to the tunnel.
type opRecord struct {
	N          int
	Start, End time.Time
	Acked      bool   // the WRITE was answered NFS3_OK, FILE_SYNC: the file must hold its content from then on
	Err        string // empty if the whole operation succeeded
	Stopped    bool   // cut short because the benchmark stopped the client: neither a success nor an error
}

func (r opRecord) ok() bool { return r.Err == "" && !r.Stopped }

func (r opRecord) failed() bool { return r.Err != "" && !r.Stopped }

// opLog collects the client's operations; the benchmark reads it while
// the client runs.
type opLog struct {
	mu  sync.Mutex
	ops []opRecord
}

func (l *opLog) add(r opRecord) {
	l.mu.Lock()
	l.ops = append(l.ops, r)
	l.mu.Unlock()
}

func (l *opLog) snapshot() []opRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]opRecord(nil), l.ops...)
}

// firstOKAfter returns the first operation that succeeded and ended after t.
func (l *opLog) firstOKAfter(t time.Time) (opRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.ops {
		if r.ok() && r.End.After(t) {
			return r, true
		}
	}
	return opRecord{}, false
}

// successes counts the operations that succeeded.
func (l *opLog) successes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.ops {
		if r.ok() {
			n++
		}
	}
	return n
}

// nfsConn is an NFS client connection with the root handle of /data.
type nfsConn struct {
	c    *nfsclient.Client
	root []byte
}

// dialMount connects to nfsAddr and mounts /data through mountAddr (the
// same address for keel and its tunnel).
func dialMount(ctx context.Context, nfsAddr, mountAddr string) (*nfsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	mc, err := nfsclient.Dial(ctx, mountAddr, nfsclient.Options{Machine: "keel-bench"})
	if err != nil {
		return nil, err
	}
	root, st, err := mc.Mount(ctx, exportPath)
	if err == nil && st != mount.MNT3_OK {
		err = fmt.Errorf("MNT %s: status %d", exportPath, st)
	}
	if err != nil {
		mc.Close()
		return nil, err
	}
	if mountAddr == nfsAddr {
		return &nfsConn{c: mc, root: root}, nil
	}
	mc.Close()
	c, err := nfsclient.Dial(ctx, nfsAddr, nfsclient.Options{Machine: "keel-bench"})
	if err != nil {
		return nil, err
	}
	return &nfsConn{c: c, root: root}, nil
}

func (n *nfsConn) close() {
	if n != nil {
		n.c.Close()
	}
}

// nfsStatus names an NFS status.
func nfsStatus(st nfsv3.Nfsstat3) string {
	if s, ok := nfsv3.Nfsstat3_name[st]; ok {
		return s
	}
	return "status " + strconv.Itoa(int(st))
}

// runFailoverClient does operations through the tunnel at addr until ctx
// ends (or maxOps), reconnecting when the connection ends.
func runFailoverClient(ctx context.Context, addr string, log *opLog) {
	var conn *nfsConn
	defer func() { conn.close() }()
	for i := 0; i < maxOps && ctx.Err() == nil; {
		if conn == nil {
			start := time.Now()
			c, err := dialMount(ctx, addr, addr)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.add(opRecord{N: -1, Start: start, End: time.Now(), Err: "connect to the tunnel and mount: " + err.Error()})
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			conn = c
		}
		rec, err := fileOp(ctx, conn, i)
		if ctx.Err() != nil && rec.Err != "" {
			rec.Stopped = true
		}
		log.add(rec)
		i++
		if errors.Is(err, nfsclient.ErrClosed) {
			conn.close()
			conn = nil
		}
	}
}

// fileOp creates file i, writes its content FILE_SYNC, reads it back and
// compares. The error is the transport's, if any.
func fileOp(ctx context.Context, conn *nfsConn, i int) (opRecord, error) {
	rec := opRecord{N: i, Start: time.Now()}
	name, data := fileName(i), fileContent(i)
	fail := func(err error, format string, args ...any) (opRecord, error) {
		rec.End = time.Now()
		rec.Err = fmt.Sprintf(format, args...)
		return rec, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	mode := uint32(0o644)
	cr, st, err := conn.c.Create(ctx, conn.root, name, nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
	if err != nil {
		return fail(err, "CREATE %s: %v", name, err)
	}
	if st != nfsv3.NFS3_OK {
		return fail(nil, "CREATE %s: %s", name, nfsStatus(st))
	}
	h := nfsclient.Handle(cr.Obj)
	if h == nil {
		lk, st, err := conn.c.Lookup(ctx, conn.root, name)
		if err != nil || st != nfsv3.NFS3_OK {
			return fail(err, "LOOKUP %s after CREATE: %s %v", name, nfsStatus(st), err)
		}
		h = lk.Object.Data
	}
	wr, st, err := conn.c.Write(ctx, h, 0, data)
	switch {
	case err != nil:
		return fail(err, "WRITE %s: %v", name, err)
	case st != nfsv3.NFS3_OK:
		return fail(nil, "WRITE %s: %s", name, nfsStatus(st))
	case int(wr.Count) != len(data):
		return fail(nil, "WRITE %s: %d of %d bytes written", name, wr.Count, len(data))
	case wr.Committed != nfsv3.FILE_SYNC:
		return fail(nil, "WRITE %s: answered %s to a FILE_SYNC write", name, nfsv3.StableHow_name[wr.Committed])
	}
	rec.Acked = true
	rr, st, err := conn.c.Read(ctx, h, 0, failoverFileSize)
	switch {
	case err != nil:
		return fail(err, "READ %s: %v", name, err)
	case st != nfsv3.NFS3_OK:
		return fail(nil, "READ %s: %s", name, nfsStatus(st))
	case !bytes.Equal(rr.Data, data):
		return fail(nil, "READ %s: %d bytes back that are not the %d written", name, len(rr.Data), len(data))
	}
	rec.End = time.Now()
	return rec, nil
}

// checkResult is what reading an acknowledged file back found.
type checkResult int

const (
	checkOK checkResult = iota
	checkMissing
	checkWrong
	checkUnreadable // every attempt failed in transport: counted as lost, with the error
)

// checkFile reads file i back through conn and compares it with what was
// written.
func checkFile(ctx context.Context, conn *nfsConn, i int) (checkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	name := fileName(i)
	lk, st, err := conn.c.Lookup(ctx, conn.root, name)
	if err != nil {
		return checkUnreadable, err
	}
	if st == nfsv3.NFS3ERR_NOENT {
		return checkMissing, nil
	}
	if st != nfsv3.NFS3_OK {
		return checkUnreadable, fmt.Errorf("LOOKUP %s: %s", name, nfsStatus(st))
	}
	got, err := conn.c.ReadFile(ctx, lk.Object.Data, 64<<10, 2*failoverFileSize)
	if err != nil {
		return checkUnreadable, err
	}
	if !bytes.Equal(got, fileContent(i)) {
		return checkWrong, nil
	}
	return checkOK, nil
}
