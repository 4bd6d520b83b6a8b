package tunnel

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

func callBytes(prog, vers, proc uint32) []byte {
	m := rpcv2.RpcMsg{Xid: 9, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{Rpcvers: 2, Prog: prog, Vers: vers, Proc: proc,
		Cred: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
	var b bytes.Buffer
	m.WriteTo(&b)
	return b.Bytes()
}

func replyBytes(verf []byte, data rpcv2.AcceptedReplyData, status ...uint32) []byte {
	m := rpcv2.RpcMsg{Xid: 9, Body: &rpcv2.RpcMsgBody_REPLY{Rbody: &rpcv2.ReplyBody_MSG_ACCEPTED{
		Areply: rpcv2.AcceptedReply{Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE, Body: verf}, ReplyData: data}}}}
	var b bytes.Buffer
	m.WriteTo(&b)
	for _, s := range status {
		b.Write(binary.BigEndian.AppendUint32(nil, s))
	}
	return b.Bytes()
}

func TestTryAgain(t *testing.T) {
	ok := &rpcv2.AcceptedReplyData_SUCCESS{}
	cases := []struct {
		name  string
		call  []byte
		reply []byte
		want  bool
	}{
		{"NFS JUKEBOX", callBytes(100003, 3, 7), replyBytes(nil, ok, 10008), true},
		{"NFS JUKEBOX after a verifier", callBytes(100003, 3, 1), replyBytes([]byte{1, 2, 3, 4, 5}, ok, 10008), true},
		{"NFS OK", callBytes(100003, 3, 7), replyBytes(nil, ok, 0), false},
		{"NFS NOENT", callBytes(100003, 3, 3), replyBytes(nil, ok, 2), false},
		{"MNT SERVERFAULT", callBytes(100005, 3, 1), replyBytes(nil, ok, 10006), true},
		{"MNT ACCES", callBytes(100005, 3, 1), replyBytes(nil, ok, 13), false},
		{"EXPORT SYSTEM_ERR", callBytes(100005, 3, 5), replyBytes(nil, &rpcv2.AcceptedReplyData_default{Stat: rpcv2.SYSTEM_ERR}), true},
		{"NFS GARBAGE_ARGS", callBytes(100003, 3, 1), replyBytes(nil, &rpcv2.AcceptedReplyData_default{Stat: rpcv2.GARBAGE_ARGS}), false},
		{"truncated reply", callBytes(100003, 3, 1), []byte{0, 0, 0, 9}, false},
	}
	for _, tc := range cases {
		if got := tryAgain(tc.call, tc.reply); got != tc.want {
			t.Errorf("%s: tryAgain = %v, want %v", tc.name, got, tc.want)
		}
	}
}
