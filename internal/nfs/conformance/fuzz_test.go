package conformance

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// FuzzProcedureArgs sends arbitrary argument bytes to every NFSv3 procedure
// (0-21) and every MOUNT v3 procedure (0-5) of the real services, over one
// real store: keel's own handlers decode and act on them (handles, names,
// offsets, attributes), not stand-ins. Every call must get a well-formed
// reply (an NFS status, or an RPC-level refusal such as GARBAGE_ARGS) or a
// closed connection, never a hang or a panic, and an honest client is
// served after each one. The seeds are valid calls on the export's root.
func FuzzProcedureArgs(f *testing.F) {
	s := buildServer(f, serverOpts{})
	dial := func() *nfsclient.Client {
		c, err := nfsclient.Dial(context.Background(), s.addr, nfsclient.Options{Machine: "keel-fuzz"})
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	c := dial()
	f.Cleanup(func() { c.Close() })
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	root, mst, err := c.Mount(cctx, "/data")
	cancel()
	if err != nil || mst != mount.MNT3_OK {
		f.Fatalf("MNT /data: status %d, %v", mst, err)
	}

	// Seeds: the root handle, then a name, then room for the other fields.
	fhArg := append(xdrOpaque(root), xdrOpaque([]byte("f"))...)
	fhArg = append(fhArg, make([]byte, 40)...)
	for proc := uint8(0); proc < 22; proc++ {
		f.Add(proc, false, fhArg)
	}
	f.Add(uint8(7), false, append(xdrOpaque(root), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff)) // WRITE: huge count and data length
	f.Add(uint8(14), false, append(fhArg, fhArg...))                                                                                    // RENAME: two dirops
	for proc := uint8(0); proc < 6; proc++ {
		f.Add(proc, true, xdrOpaque([]byte("/data")))
	}
	f.Add(uint8(1), true, xdrOpaque([]byte("/data@nosuchsnapshot/../..")))

	f.Fuzz(func(t *testing.T, proc uint8, isMount bool, args []byte) {
		prog, p := uint32(nfsclient.NFSProgram), uint32(proc%22)
		if isMount {
			prog, p = nfsclient.MountProgram, uint32(proc%6)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		xid := c.NextXID()
		raw, err := c.EncodeCall(xid, prog, 3, p, nfsclient.WriterFunc(func(w io.Writer) (int64, error) {
			n, err := w.Write(args)
			return int64(n), err
		}))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := c.SendRaw(ctx, xid, raw)
		switch {
		case errors.Is(err, nfsclient.ErrClosed):
			c.Close() // the server may close a connection that sent garbage
			c = dial()
		case err != nil:
			t.Fatalf("program %d procedure %d with %d bytes of arguments: no reply: %v", prog, p, len(args), err)
		default:
			var re *nfsclient.RPCError
			if err := nfsclient.DecodeReply(rec, nil); err != nil && !errors.As(err, &re) {
				t.Fatalf("program %d procedure %d: malformed reply: %v", prog, p, err)
			}
		}
		if _, st, err := c.Getattr(ctx, root); err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("after program %d procedure %d: GETATTR of the root: status %d, %v", prog, p, st, err)
		}
	})
}

// xdrOpaque encodes b as XDR variable-length opaque data (or a string).
func xdrOpaque(b []byte) []byte {
	n := len(b)
	out := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	out = append(out, b...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return out
}
