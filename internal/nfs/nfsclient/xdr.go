package nfsclient

import (
	"encoding/binary"
	"io"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// WriterFunc adapts a function to io.WriterTo (call arguments).
type WriterFunc func(w io.Writer) (int64, error)

// WriteTo calls f.
func (f WriterFunc) WriteTo(w io.Writer) (int64, error) { return f(w) }

// ReaderFunc adapts a function to io.ReaderFrom (call results).
type ReaderFunc func(r io.Reader) (int64, error)

// ReadFrom calls f.
func (f ReaderFunc) ReadFrom(r io.Reader) (int64, error) { return f(r) }

// Into returns a result reader that decodes a union (or any value read by a
// generated ReadXxx function, e.g. nfsv3.ReadGetattr3res) into *dst.
func Into[T any](dst *T, read func(io.Reader) (T, int64, error)) io.ReaderFrom {
	return ReaderFunc(func(r io.Reader) (int64, error) {
		v, n, err := read(r)
		if err == nil {
			*dst = v
		}
		return n, err
	})
}

// Uint32s encodes XDR unsigned ints (e.g. the portmapper's arguments).
func Uint32s(vs ...uint32) io.WriterTo {
	return WriterFunc(func(w io.Writer) (int64, error) {
		b := make([]byte, 0, 4*len(vs))
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		n, err := w.Write(b)
		return int64(n), err
	})
}

// String encodes an XDR string (any bytes, unlike go-xdr's ASCII-only
// strings), e.g. MOUNT's dirpath.
func String(s string) io.WriterTo {
	return WriterFunc(func(w io.Writer) (int64, error) {
		b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(s)+3), uint32(len(s)))
		b = append(b, s...)
		b = append(b, make([]byte, (4-len(s)%4)%4)...)
		n, err := w.Write(b)
		return int64(n), err
	})
}

// Set selects the attributes a SETATTR, CREATE, MKDIR or SYMLINK sets; nil
// fields are left alone.
type Set struct {
	Mode, UID, GID     *uint32
	Size               *uint64
	Atime, Mtime       *time.Time // set to this (client) time
	AtimeNow, MtimeNow bool       // set to the server's time
}

// Sattr3 returns s as the protocol's sattr3.
func (s Set) Sattr3() nfsv3.Sattr3 {
	a := nfsv3.Sattr3{
		Mode: &nfsv3.SetMode3_default{}, Uid: &nfsv3.SetUid3_default{}, Gid: &nfsv3.SetGid3_default{},
		Size: &nfsv3.SetSize3_default{}, Atime: &nfsv3.SetAtime_default{SetIt: nfsv3.DONT_CHANGE},
		Mtime: &nfsv3.SetMtime_default{SetIt: nfsv3.DONT_CHANGE},
	}
	if s.Mode != nil {
		a.Mode = &nfsv3.SetMode3_TRUE{Mode: *s.Mode}
	}
	if s.UID != nil {
		a.Uid = &nfsv3.SetUid3_TRUE{Uid: *s.UID}
	}
	if s.GID != nil {
		a.Gid = &nfsv3.SetGid3_TRUE{Gid: *s.GID}
	}
	if s.Size != nil {
		a.Size = &nfsv3.SetSize3_TRUE{Size: *s.Size}
	}
	switch {
	case s.Atime != nil:
		a.Atime = &nfsv3.SetAtime_SET_TO_CLIENT_TIME{Atime: Time(*s.Atime)}
	case s.AtimeNow:
		a.Atime = &nfsv3.SetAtime_default{SetIt: nfsv3.SET_TO_SERVER_TIME}
	}
	switch {
	case s.Mtime != nil:
		a.Mtime = &nfsv3.SetMtime_SET_TO_CLIENT_TIME{Mtime: Time(*s.Mtime)}
	case s.MtimeNow:
		a.Mtime = &nfsv3.SetMtime_default{SetIt: nfsv3.SET_TO_SERVER_TIME}
	}
	return a
}

// Time converts a time to nfstime3.
func Time(t time.Time) nfsv3.Nfstime3 {
	return nfsv3.Nfstime3{Seconds: uint32(t.Unix()), Nseconds: uint32(t.Nanosecond())}
}

// Unchecked, Guarded and Exclusive are the three ways to CREATE.
func Unchecked(s Set) nfsv3.Createhow3 { return &nfsv3.Createhow3_UNCHECKED{ObjAttributes: s.Sattr3()} }

// Guarded fails with NFS3ERR_EXIST if the name exists.
func Guarded(s Set) nfsv3.Createhow3 { return &nfsv3.Createhow3_GUARDED{ObjAttributes: s.Sattr3()} }

// Exclusive creates with a verifier; a retransmission with the same verifier
// succeeds on the file it made.
func Exclusive(verf [8]byte) nfsv3.Createhow3 { return &nfsv3.Createhow3_EXCLUSIVE{Verf: verf} }

// Attr returns the attributes of a post_op_attr, if it carries them.
func Attr(p nfsv3.PostOpAttr) (nfsv3.Fattr3, bool) {
	if a, ok := p.(*nfsv3.PostOpAttr_TRUE); ok {
		return a.Attributes, true
	}
	return nfsv3.Fattr3{}, false
}

// Before returns the pre-operation attributes of WCC data, if present.
func Before(w nfsv3.WccData) (nfsv3.WccAttr, bool) {
	if a, ok := w.Before.(*nfsv3.PreOpAttr_TRUE); ok {
		return a.Attributes, true
	}
	return nfsv3.WccAttr{}, false
}

// Handle returns the handle of a post_op_fh3, or nil.
func Handle(p nfsv3.PostOpFh3) []byte {
	if h, ok := p.(*nfsv3.PostOpFh3_TRUE); ok {
		return h.Handle.Data
	}
	return nil
}
