package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// The metadata load of `keel bench nfs`: keel's Go NFSv3 client creates,
// inspects and removes small (empty) files, from several connections at
// once, in a directory of its own.

const (
	metaDir     = "meta"
	metaTimeout = 60 * time.Second // for each call
)

// MetaResult is the metadata loop's figures; an operation is one NFS call.
type MetaResult struct {
	Files     int     `json:"files"`
	Workers   int     `json:"connections"`
	Ops       int     `json:"operations"` // 3 per file: CREATE, GETATTR, REMOVE
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_s"`
	Create    Latency `json:"create"`
	Getattr   Latency `json:"getattr"`
	Remove    Latency `json:"remove"`
}

// metaSetup mounts /data and makes (or finds) the directory the loop works
// in; it returns that directory's handle.
func metaSetup(ctx context.Context, nfsAddr, mountAddr string) ([]byte, error) {
	conn, err := dialMount(ctx, nfsAddr, mountAddr)
	if err != nil {
		return nil, fmt.Errorf("bench: metadata loop: mount: %w", err)
	}
	defer conn.close()
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	mode := uint32(0o755)
	mk, st, err := conn.c.Mkdir(ctx, conn.root, metaDir, nfsclient.Set{Mode: &mode})
	if err != nil {
		return nil, fmt.Errorf("bench: metadata loop: MKDIR %s: %w", metaDir, err)
	}
	if st == nfsv3.NFS3_OK {
		if h := nfsclient.Handle(mk.Obj); h != nil {
			return h, nil
		}
	} else if st != nfsv3.NFS3ERR_EXIST {
		return nil, fmt.Errorf("bench: metadata loop: MKDIR %s: %s", metaDir, nfsStatus(st))
	}
	lk, st, err := conn.c.Lookup(ctx, conn.root, metaDir)
	if err != nil || st != nfsv3.NFS3_OK {
		return nil, fmt.Errorf("bench: metadata loop: LOOKUP %s: %s %v", metaDir, nfsStatus(st), err)
	}
	return lk.Object.Data, nil
}

// runMeta creates, inspects and removes files files from workers
// connections to nfsAddr, each file by one worker: CREATE (UNCHECKED, mode
// 0644), GETATTR of the new handle, REMOVE. It is timed from when every
// connection is up; the first failure stops it.
func runMeta(ctx context.Context, nfsAddr string, dir []byte, files, workers int) (MetaResult, error) {
	r := MetaResult{Files: files, Workers: workers, Ops: 3 * files}
	conns := make([]*nfsclient.Client, workers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		c, err := nfsclient.Dial(dctx, nfsAddr, nfsclient.Options{Machine: "keel-bench"})
		cancel()
		if err != nil {
			return r, fmt.Errorf("bench: metadata loop: connect to %s: %w", nfsAddr, err)
		}
		conns[i] = c
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][3][]time.Duration, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w, c := range conns {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < files && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				d, err := metaFile(ctx, c, dir, fmt.Sprintf("m%06d", i))
				if err != nil {
					cancel(err)
					return
				}
				for k := range d {
					lat[w][k] = append(lat[w][k], d[k])
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return r, err
	}
	r.Seconds, r.OpsPerSec = took.Seconds(), ratio(float64(r.Ops), took.Seconds())
	var all [3][]time.Duration
	for _, l := range lat {
		for k := range all {
			all[k] = append(all[k], l[k]...)
		}
	}
	r.Create, r.Getattr, r.Remove = summarize(all[0]), summarize(all[1]), summarize(all[2])
	return r, nil
}

// metaFile creates, inspects and removes one file and returns the time of
// each call.
func metaFile(ctx context.Context, c *nfsclient.Client, dir []byte, name string) ([3]time.Duration, error) {
	var d [3]time.Duration
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	mode := uint32(0o644)
	t := time.Now()
	cr, st, err := c.Create(ctx, dir, name, nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
	d[0] = time.Since(t)
	if err != nil || st != nfsv3.NFS3_OK {
		return d, fmt.Errorf("bench: metadata loop: CREATE %s: %s %v", name, nfsStatus(st), err)
	}
	h := nfsclient.Handle(cr.Obj)
	if h == nil {
		return d, fmt.Errorf("bench: metadata loop: CREATE %s returned no handle", name)
	}
	t = time.Now()
	_, st, err = c.Getattr(ctx, h)
	d[1] = time.Since(t)
	if err != nil || st != nfsv3.NFS3_OK {
		return d, fmt.Errorf("bench: metadata loop: GETATTR %s: %s %v", name, nfsStatus(st), err)
	}
	t = time.Now()
	_, st, err = c.Remove(ctx, dir, name)
	d[2] = time.Since(t)
	if err != nil || st != nfsv3.NFS3_OK {
		return d, fmt.Errorf("bench: metadata loop: REMOVE %s: %s %v", name, nfsStatus(st), err)
	}
	return d, nil
}
