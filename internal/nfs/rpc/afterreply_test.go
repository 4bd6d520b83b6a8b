package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// A function given to AfterReply runs once per call, after the reply went
// out: a READ buffer it recycles (here: scribbles over) is not sent.
func TestAfterReplyRunsAfterTheReplyIsWritten(t *testing.T) {
	const size = 256 << 10
	ran := make(chan struct{}, 4)
	svc := func(ctx context.Context, _, _ uint32, _ io.ReadCloser, newReturnValue func(int) io.Writer) (rpcv2.AcceptedReplyData, error) {
		data := bytes.Repeat([]byte{0x5a}, size)
		if !AfterReply(ctx, func() { clear(data); ran <- struct{}{} }) {
			t.Error("AfterReply refused inside a served call")
		}
		res := &nfsv3.Read3res_NFS3_OK{Resok: nfsv3.Read3resok{FileAttributes: &nfsv3.PostOpAttr_FALSE{}, Count: size, Eof: true, Data: data}}
		if _, err := res.WriteTo(newReturnValue(res.GetEncodedSizeBytes())); err != nil {
			return nil, err
		}
		return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
	}
	s := &Server{Programs: map[uint32]Service{nfsv3.NFS_PROGRAM_PROGRAM_NUMBER: svc}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var call bytes.Buffer
	call.Write(make([]byte, 4))
	msg := rpcv2.RpcMsg{Xid: 7, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{Rpcvers: 2, Prog: nfsv3.NFS_PROGRAM_PROGRAM_NUMBER,
		Vers: 3, Proc: 6, Cred: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
	if _, err := msg.WriteTo(&call); err != nil {
		t.Fatal(err)
	}
	rec := call.Bytes()
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|0x80000000)
	for range 2 {
		if _, err := c.Write(rec); err != nil {
			t.Fatal(err)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		reply := make([]byte, binary.BigEndian.Uint32(hdr[:])&^0x80000000)
		if _, err := io.ReadFull(c, reply); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(reply, bytes.Repeat([]byte{0x5a}, size)) {
			t.Fatal("the reply's data was changed before it was sent")
		}
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("the AfterReply function did not run")
		}
	}
	if len(ran) != 0 {
		t.Fatal("an AfterReply function ran more than once")
	}
	if AfterReply(context.Background(), func() {}) {
		t.Fatal("AfterReply accepted a context that is no call")
	}
}
