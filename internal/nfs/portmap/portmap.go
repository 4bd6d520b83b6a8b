// Package portmap is a minimal portmapper (RFC 1833, version 2: NULL,
// GETPORT, DUMP) so that clients which ask port 111 where MOUNT and NFS are
// find keel's ports. It only describes keel's own programs; it does not
// register others. Written by hand: four procedures of fixed-size integers
// need no generated code.
package portmap

import (
	"context"
	"encoding/binary"
	"io"

	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"

	"keel/internal/nfs/rpc"
)

// Program is the portmapper's program number.
const Program = 100000

// Protocol numbers.
const (
	IPPROTO_TCP = 6
	IPPROTO_UDP = 17
)

// Mapping says that a program version is served on a port.
type Mapping struct {
	Prog, Vers, Prot, Port uint32
}

// Service returns the portmapper as an RPC service answering from mappings.
func Service(mappings []Mapping) rpc.Service {
	return func(ctx context.Context, vers, proc uint32, args io.ReadCloser, newReturnValue func(int) io.Writer) (rpcv2.AcceptedReplyData, error) {
		defer args.Close()
		if vers != 2 {
			var mm rpcv2.AcceptedReplyData_PROG_MISMATCH
			mm.MismatchInfo.Low, mm.MismatchInfo.High = 2, 2
			return &mm, nil
		}
		switch proc {
		case 0: // NULL
			return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
		case 3: // GETPORT
			var b [16]byte
			if _, err := io.ReadFull(args, b[:]); err != nil {
				return &rpcv2.AcceptedReplyData_default{Stat: rpcv2.GARBAGE_ARGS}, nil
			}
			want := Mapping{Prog: be(b[0:]), Vers: be(b[4:]), Prot: be(b[8:])}
			port := uint32(0)
			for _, m := range mappings {
				if m.Prog == want.Prog && m.Vers == want.Vers && m.Prot == want.Prot {
					port = m.Port
				}
			}
			_, _ = newReturnValue(4).Write(binary.BigEndian.AppendUint32(nil, port))
			return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
		case 4: // DUMP
			out := make([]byte, 0, len(mappings)*20+4)
			for _, m := range mappings {
				for _, v := range []uint32{1, m.Prog, m.Vers, m.Prot, m.Port} {
					out = binary.BigEndian.AppendUint32(out, v)
				}
			}
			out = binary.BigEndian.AppendUint32(out, 0)
			_, _ = newReturnValue(len(out)).Write(out)
			return &rpcv2.AcceptedReplyData_SUCCESS{}, nil
		}
		return &rpcv2.AcceptedReplyData_default{Stat: rpcv2.PROC_UNAVAIL}, nil
	}
}

func be(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
