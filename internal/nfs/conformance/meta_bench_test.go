package conformance

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// BenchmarkMetadataLoop is the metadata load of `keel bench nfs` against the
// in-process service (no raft: commands are applied straight to the store):
// 8 connections of keel's Go client each CREATE (UNCHECKED), GETATTR and
// REMOVE their share of b.N files. One op is one file (three NFS calls);
// -benchmem counts what the client and the server allocate for them, and
// cpu-ns/op the CPU time the process (client and server) spent on them,
// which, unlike ns/op, barely depends on what else the machine runs.
func BenchmarkMetadataLoop(b *testing.B) {
	const conns = 8
	s := buildServer(b, serverOpts{})
	ctx := context.Background()
	clients := make([]*nfsclient.Client, conns)
	for i := range clients {
		c, err := nfsclient.Dial(ctx, s.addr, nfsclient.Options{Machine: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	root, st, err := clients[0].Mount(ctx, "/data")
	if err != nil || st != mount.MNT3_OK {
		b.Fatalf("MNT /data: status %d, %v", st, err)
	}
	mode := uint32(0o644)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for _, c := range clients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				name := fmt.Sprintf("m%07d", i)
				cr, st, err := c.Create(ctx, root, name, nfsclient.Unchecked(nfsclient.Set{Mode: &mode}))
				if err != nil || st != nfsv3.NFS3_OK {
					errs <- fmt.Errorf("CREATE %s: status %d, %v", name, st, err)
					return
				}
				if _, st, err := c.Getattr(ctx, nfsclient.Handle(cr.Obj)); err != nil || st != nfsv3.NFS3_OK {
					errs <- fmt.Errorf("GETATTR %s: status %d, %v", name, st, err)
					return
				}
				if _, st, err := c.Remove(ctx, root, name); err != nil || st != nfsv3.NFS3_OK {
					errs <- fmt.Errorf("REMOVE %s: status %d, %v", name, st, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// processCPU returns the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
