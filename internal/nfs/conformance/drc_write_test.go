package conformance

import (
	"bytes"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestWriteRetransmission is the regression test of an anomaly the chaos
// runs found (a register read back an overwritten value): a WRITE resent
// with its xid after another client wrote the same range — what a tunnel
// does after a fail-over when the first try was made but its reply lost —
// must be answered from the duplicate request cache, not done again, or
// the old data comes back over the newer. Large writes (several log
// entries, each with its own record) are covered, FILE_SYNC and UNSTABLE.
func TestWriteRetransmission(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	other, _ := s.rootClient()
	cx := ctx(t)
	for i, tc := range []struct {
		name   string
		size   int
		stable nfsv3.StableHow
	}{{"small", 16, nfsv3.FILE_SYNC}, {"large", 1 << 20, nfsv3.FILE_SYNC}, {"large unstable", 1 << 20, nfsv3.UNSTABLE}} {
		name, size := tc.name, tc.size
		h := s.fileAs(root, name, 0, 0, 0o644, nil)
		first := bytes.Repeat([]byte{'a'}, size)
		newer := bytes.Repeat([]byte{'b'}, size)
		xid := uint32(0x7c000000 + i)
		raw, err := c.EncodeCall(xid, nfsclient.NFSProgram, 3, nfsclient.ProcWrite,
			&nfsv3.Write3args{File: nfsv3.NfsFh3{Data: h}, Count: uint32(size), Stable: tc.stable, Data: first})
		if err != nil {
			t.Fatal(err)
		}
		reply, err := c.SendRaw(cx, xid, raw)
		if err != nil {
			t.Fatal(err)
		}
		if st := replyStatus(t, reply); st != nfsv3.NFS3_OK {
			t.Fatalf("%s: WRITE: %s", name, statusName(st))
		}
		if err := other.WriteFile(cx, h, newer, 0); err != nil {
			t.Fatalf("%s: the other client's WRITE: %v", name, err)
		}
		// The retransmission, on a new connection as after a reconnect.
		c2 := s.dial(nfsclient.Options{Machine: "conformance"})
		again, err := c2.SendRaw(cx, xid, raw)
		if err != nil {
			t.Fatal(err)
		}
		if st := replyStatus(t, again); st != nfsv3.NFS3_OK {
			t.Fatalf("%s: the retransmitted WRITE: %s", name, statusName(st))
		}
		got, err := c.ReadFile(cx, h, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, newer) {
			t.Fatalf("%s: after the retransmission the file holds %q…, want the newer write's %q… (the WRITE was done twice)", name, got[:8], newer[:8])
		}
		// The same arguments with a new xid are a new write, and happen.
		if _, st, err := c.Write(cx, h, 0, first[:min(size, 1<<19)]); err != nil || st != nfsv3.NFS3_OK {
			t.Fatalf("%s: WRITE with a new xid: %v %v", name, st, err)
		}
		if got, _ := c.ReadFile(cx, h, 0, size); got[0] != 'a' {
			t.Fatalf("%s: a WRITE with a new xid was not done", name)
		}
	}
}
