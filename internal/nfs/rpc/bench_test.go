package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// BenchmarkWriteAndReadMiB sends 1 MiB NFS WRITE arguments through the
// server over loopback TCP; the procedure decodes them as the generated
// NFS service does and answers with 1 MiB of READ results. B/op and
// allocs/op (with -benchmem) are the server's copies and allocations per
// MiB in and MiB out, whatever the machine's load: the client side reuses
// its buffers.
func BenchmarkWriteAndReadMiB(b *testing.B) {
	const size = 1 << 20
	out := bytes.Repeat([]byte{0x5a}, size)
	svc := func(_ context.Context, _, _ uint32, args io.ReadCloser, newReturnValue func(int) io.Writer) (rpcv2.AcceptedReplyData, error) {
		var a nfsv3.Write3args
		if _, err := a.ReadFrom(args); err != nil {
			return nil, err
		}
		if len(a.Data) != size {
			b.Fatalf("decoded %d bytes of data", len(a.Data))
		}
		data := make([]byte, size) // as Store.Read: a fresh buffer filled from the store
		copy(data, out)
		res := &nfsv3.Read3res_NFS3_OK{Resok: nfsv3.Read3resok{FileAttributes: &nfsv3.PostOpAttr_FALSE{}, Count: size, Eof: true, Data: data}}
		if _, err := res.WriteTo(newReturnValue(res.GetEncodedSizeBytes())); err != nil {
			return nil, err
		}
		return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
	}
	s := &Server{Programs: map[uint32]Service{nfsv3.NFS_PROGRAM_PROGRAM_NUMBER: svc}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	var call bytes.Buffer
	call.Write(make([]byte, 4))
	msg := rpcv2.RpcMsg{Xid: 1, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{Rpcvers: 2, Prog: nfsv3.NFS_PROGRAM_PROGRAM_NUMBER,
		Vers: 3, Proc: 7, Cred: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
	if _, err := msg.WriteTo(&call); err != nil {
		b.Fatal(err)
	}
	args := nfsv3.Write3args{File: nfsv3.NfsFh3{Data: make([]byte, 40)}, Count: size, Stable: nfsv3.UNSTABLE, Data: out}
	if _, err := args.WriteTo(&call); err != nil {
		b.Fatal(err)
	}
	rec := call.Bytes()
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|0x80000000)
	reply := make([]byte, 2*size)
	b.SetBytes(2 * size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(rec); err != nil {
			b.Fatal(err)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			b.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:]) &^ 0x80000000)
		if n < size || n > len(reply) {
			b.Fatalf("reply of %d bytes", n)
		}
		if _, err := io.ReadFull(c, reply[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
