package conformance

import (
	"bytes"
	"io"
	"testing"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/nfs/nfsclient"
)

// TestNonASCIINames: file names are opaque bytes in NFSv3 (RFC 1813
// filename3 is a string, and Linux clients send UTF-8). Names outside ASCII
// must list, look up and create like any other.
//
// Upstream go-xdr refuses any byte above 0x7f in XDR strings, which made a
// call naming "café" GARBAGE_ARGS and a directory holding one unlistable;
// keel's copy in third_party/go-xdr carries names as bytes.
func TestNonASCIINames(t *testing.T) {
	s := startServer(t, serverOpts{})
	c, root := s.rootClient()
	cx := ctx(t)
	s.fileAs(root, "café", 0, 0, 0o644, []byte("x"))

	ents, st, err := c.ReaddirPlus(cx, root, 0)
	if err != nil || st != nfsv3.NFS3_OK {
		t.Errorf("READDIRPLUS of a directory holding café: %s %v", statusName(st), err)
	}
	found := false
	for _, e := range ents {
		found = found || e.Name == "café"
	}
	if !found {
		t.Errorf("READDIRPLUS did not list café: %+v", ents)
	}

	var lk nfsv3.Lookup3res
	err = c.Call(cx, nfsclient.NFSProgram, 3, nfsclient.ProcLookup, diropArgs(root, "café"), nfsclient.Into(&lk, nfsv3.ReadLookup3res))
	if err != nil || lk.GetStatus() != nfsv3.NFS3_OK {
		t.Errorf("LOOKUP café: %v %v", lk, err)
	}
	var cr nfsv3.Create3res
	args := nfsclient.WriterFunc(func(w io.Writer) (int64, error) {
		var b bytes.Buffer
		_, _ = diropArgs(root, "naïve").WriteTo(&b)
		_, _ = nfsclient.Uint32s(uint32(nfsv3.GUARDED)).WriteTo(&b)
		a := nfsclient.Set{}.Sattr3()
		_, _ = a.WriteTo(&b)
		n, err := w.Write(b.Bytes())
		return int64(n), err
	})
	err = c.Call(cx, nfsclient.NFSProgram, 3, nfsclient.ProcCreate, args, nfsclient.Into(&cr, nfsv3.ReadCreate3res))
	if err != nil || cr.GetStatus() != nfsv3.NFS3_OK {
		t.Errorf("CREATE naïve: %v %v", cr, err)
	}
}

// diropArgs encodes diropargs3 by hand, with any bytes in the name.
func diropArgs(dir []byte, name string) io.WriterTo {
	return nfsclient.WriterFunc(func(w io.Writer) (int64, error) {
		var b bytes.Buffer
		_, _ = nfsclient.Uint32s(uint32(len(dir))).WriteTo(&b)
		b.Write(dir)
		b.Write(make([]byte, (4-len(dir)%4)%4))
		_, _ = nfsclient.String(name).WriteTo(&b)
		n, err := w.Write(b.Bytes())
		return int64(n), err
	})
}
