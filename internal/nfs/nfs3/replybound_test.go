package nfs3

import (
	"bytes"
	"io"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

func encode(t *testing.T, a io.WriterTo) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := a.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The reply bound of READ, READDIR and READDIRPLUS follows the count the
// client asks for (capped at MaxIO); other calls are small.
func TestReplyBound(t *testing.T) {
	fh := nfsv3.NfsFh3{Data: make([]byte, 37)} // padded to 40 on the wire
	read := encode(t, &nfsv3.Read3args{File: fh, Offset: 1 << 40, Count: 65536})
	for _, tt := range []struct {
		name       string
		prog, proc uint32
		args       []byte
		want       int
	}{
		{"READ", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 6, read, 65536 + replySlack},
		{"READ over MaxIO", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 6, encode(t, &nfsv3.Read3args{File: fh, Count: 8 << 20}), MaxIO + replySlack},
		{"READ cut short", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 6, read[:len(read)-2], MaxIO + replySlack},
		{"READ with a handle too long", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 6, append([]byte{0, 0, 0, 65}, make([]byte, 80)...), SmallReply},
		{"READDIR", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 16, encode(t, &nfsv3.Readdir3args{Dir: fh, Cookie: 9, Count: 4096}), 4096 + replySlack},
		{"READDIRPLUS", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 17, encode(t, &nfsv3.Readdirplus3args{Dir: fh, Dircount: 512, Maxcount: 32768}), 32768 + replySlack},
		{"GETATTR", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 1, encode(t, &nfsv3.Getattr3args{Object: fh}), SmallReply},
		{"WRITE", nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, 7, encode(t, &nfsv3.Write3args{File: fh, Count: 1 << 20, Data: make([]byte, 1<<20)}), SmallReply},
		{"MOUNT", 100005, 1, nil, SmallReply},
	} {
		if got := ReplyBound(tt.prog, 3, tt.proc, tt.args); got != tt.want {
			t.Errorf("%s: bound %d, want %d", tt.name, got, tt.want)
		}
	}
}
