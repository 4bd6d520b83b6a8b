package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"keel/internal/cluster"
)

// putFunc writes data at off into the file name of the benchmark volume and
// returns once the write is acknowledged.
type putFunc func(ctx context.Context, name string, off uint64, data []byte) error

// putTimeout bounds one PUT. Giving each request a deadline also keeps
// connections alive: cluster.Client.Do, handed a context without one, makes
// its own and cancels it before the answer's body is read, which closes the
// connection and costs a TLS handshake per request.
const putTimeout = 60 * time.Second

// apiWriter writes through the admin API: PUT /v1/files/{vol}/{name}?offset=N,
// which the leader acknowledges after a quorum has committed the write. It
// counts the connections the client opens.
type apiWriter struct {
	c     *cluster.Client
	vol   string
	conns atomic.Int64
}

func newAPIWriter(c *cluster.Client, vol string) *apiWriter { return &apiWriter{c: c, vol: vol} }

func (w *apiWriter) put(ctx context.Context, name string, off uint64, data []byte) error {
	// A trace of its own for each request: WithClientTrace chains the hooks
	// of a trace already in ctx into the one it is given.
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if !info.Reused {
			w.conns.Add(1)
		}
	}}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(ctx, trace), putTimeout)
	defer cancel()
	path := "/v1/files/" + url.PathEscape(w.vol) + "/" + url.PathEscape(name) + "?offset=" + strconv.FormatUint(off, 10)
	return w.c.Do(ctx, http.MethodPut, path, func() io.Reader { return bytes.NewReader(data) }, nil)
}

// runThroughput writes total bytes from writers concurrent writers, each
// appending reqSize requests (the last one possibly shorter) to a file of
// its own, and returns the wall time from the first request to the last
// acknowledgement. The first error stops every writer.
func runThroughput(ctx context.Context, put putFunc, writers, reqSize int, total uint64) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bufs, err := randomBuffers(writers, reqSize)
	if err != nil {
		return 0, err
	}
	requests := (total + uint64(reqSize) - 1) / uint64(reqSize)
	var next atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for w, buf := range bufs {
		wg.Go(func() {
			name := fmt.Sprintf("tput-%02d", w)
			var off uint64
			for i := next.Add(1) - 1; i < requests && ctx.Err() == nil; i = next.Add(1) - 1 {
				n := min(uint64(reqSize), total-i*uint64(reqSize))
				if len(buf) >= 8 {
					binary.LittleEndian.PutUint64(buf, i) // no two requests carry the same data
				}
				if err := put(ctx, name, off, buf[:n]); err != nil {
					cancel(fmt.Errorf("bench: writer %d, request %d (%s at offset %d): %w", w, i, name, off, err))
					return
				}
				off += n
			}
		})
	}
	wg.Wait()
	return time.Since(start), context.Cause(ctx)
}

// runLatency appends ops 4 KiB writes one after another to the file name
// and returns the time of each.
func runLatency(ctx context.Context, put putFunc, name string, ops int) ([]time.Duration, error) {
	bufs, err := randomBuffers(1, smallIO)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, ops)
	for i := range ops {
		off := uint64(i) * smallIO
		t := time.Now()
		if err := put(ctx, name, off, bufs[0]); err != nil {
			return nil, fmt.Errorf("bench: 4 KiB write %d to %s: %w", i, name, err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// randomBuffers makes n buffers of size random (incompressible) bytes.
func randomBuffers(n, size int) ([][]byte, error) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
		if _, err := rand.Read(out[i]); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return out, nil
}
