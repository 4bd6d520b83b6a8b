package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"
)

// FuzzReadRecord: record marking never panics, never returns more than the
// limit, and returns exactly the fragments' bytes.
func FuzzReadRecord(f *testing.F) {
	rec := func(last bool, b []byte) []byte {
		h := uint32(len(b))
		if last {
			h |= 0x80000000
		}
		return append(binary.BigEndian.AppendUint32(nil, h), b...)
	}
	f.Add(rec(true, []byte("hello")))
	f.Add(append(rec(false, []byte("ab")), rec(true, []byte("cd"))...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadRecord(bytes.NewReader(b), 1024)
		if err != nil {
			return
		}
		if len(got) > 1024 {
			t.Fatalf("record of %d bytes over the 1024 limit", len(got))
		}
		// Re-read by walking the fragments ourselves.
		var want []byte
		r := bytes.NewReader(b)
		for {
			var h [4]byte
			io.ReadFull(r, h[:])
			v := binary.BigEndian.Uint32(h[:])
			frag := make([]byte, v&^0x80000000)
			io.ReadFull(r, frag)
			want = append(want, frag...)
			if v&0x80000000 != 0 {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatal("record differs from its fragments")
		}
	})
}

// FuzzServeCall feeds arbitrary call bodies for every NFS and MOUNT
// procedure through the server's decoding: it must answer or drop the
// connection, never panic or hang.
func FuzzServeCall(f *testing.F) {
	f.Add(uint32(100003), uint32(3), uint32(1), []byte{0, 0, 0, 4, 1, 2, 3, 4})
	f.Add(uint32(100003), uint32(3), uint32(7), bytes.Repeat([]byte{0xff}, 64))
	f.Add(uint32(100005), uint32(3), uint32(1), []byte{0, 0, 0, 5, '/', 'd', 'a', 't', 'a', 0, 0, 0})
	f.Add(uint32(100003), uint32(3), uint32(16), []byte{})
	f.Fuzz(func(t *testing.T, prog, vers, proc uint32, args []byte) {
		srv := &Server{Programs: map[uint32]Service{
			nfsv3.NFS_PROGRAM_PROGRAM_NUMBER:   nfsv3.NewNfsProgramService(panicFreeNFS{}),
			mount.MOUNT_PROGRAM_PROGRAM_NUMBER: mount.NewMountProgramService(panicFreeMount{}),
		}}
		a, b := net.Pipe()
		defer a.Close()
		go srv.ServeConn(b)
		call := rpcv2.RpcMsg{Xid: 7, Body: &rpcv2.RpcMsgBody_CALL{Cbody: rpcv2.CallBody{
			Rpcvers: 2, Vers: vers % 5, Proc: proc % 24,
			Cred: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}, Verf: rpcv2.OpaqueAuth{Flavor: rpcv2.AUTH_NONE}}}}
		body := call.Body.(*rpcv2.RpcMsgBody_CALL)
		if prog%2 == 0 {
			body.Cbody.Prog = nfsv3.NFS_PROGRAM_PROGRAM_NUMBER
		} else {
			body.Cbody.Prog = mount.MOUNT_PROGRAM_PROGRAM_NUMBER
		}
		var buf bytes.Buffer
		call.WriteTo(&buf)
		buf.Write(args)
		msg := append(binary.BigEndian.AppendUint32(nil, uint32(buf.Len())|0x80000000), buf.Bytes()...)
		_ = a.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := a.Write(msg); err != nil {
			return
		}
		if _, err := ReadRecord(a, DefaultMaxRecord); err != nil {
			t.Fatalf("no reply to a call: %v", err)
		}
	})
}

// panicFreeNFS answers every procedure with NFS3ERR_NOTSUPP.
type panicFreeNFS struct{}

func (panicFreeNFS) NfsV3Nfsproc3Null(context.Context) error { return nil }
func (panicFreeNFS) NfsV3Nfsproc3Getattr(context.Context, *nfsv3.Getattr3args) (nfsv3.Getattr3res, error) {
	return &nfsv3.Getattr3res_default{Status: nfsv3.NFS3ERR_NOTSUPP}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Setattr(context.Context, *nfsv3.Setattr3args) (nfsv3.Setattr3res, error) {
	return &nfsv3.Setattr3res_default{Status: nfsv3.NFS3ERR_NOTSUPP}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Lookup(context.Context, *nfsv3.Lookup3args) (nfsv3.Lookup3res, error) {
	return &nfsv3.Lookup3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Lookup3resfail{DirAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Access(context.Context, *nfsv3.Access3args) (nfsv3.Access3res, error) {
	return &nfsv3.Access3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Access3resfail{ObjAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Readlink(context.Context, *nfsv3.Readlink3args) (nfsv3.Readlink3res, error) {
	return &nfsv3.Readlink3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Readlink3resfail{SymlinkAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Read(context.Context, *nfsv3.Read3args) (nfsv3.Read3res, error) {
	return &nfsv3.Read3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Read3resfail{FileAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func wccNone() nfsv3.WccData {
	return nfsv3.WccData{Before: &nfsv3.PreOpAttr_FALSE{}, After: &nfsv3.PostOpAttr_FALSE{}}
}
func (panicFreeNFS) NfsV3Nfsproc3Write(context.Context, *nfsv3.Write3args) (nfsv3.Write3res, error) {
	return &nfsv3.Write3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Write3resfail{FileWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Create(context.Context, *nfsv3.Create3args) (nfsv3.Create3res, error) {
	return &nfsv3.Create3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Create3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Mkdir(context.Context, *nfsv3.Mkdir3args) (nfsv3.Mkdir3res, error) {
	return &nfsv3.Mkdir3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Mkdir3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Symlink(context.Context, *nfsv3.Symlink3args) (nfsv3.Symlink3res, error) {
	return &nfsv3.Symlink3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Symlink3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Mknod(context.Context, *nfsv3.Mknod3args) (nfsv3.Mknod3res, error) {
	return &nfsv3.Mknod3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Mknod3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Remove(context.Context, *nfsv3.Remove3args) (nfsv3.Remove3res, error) {
	return &nfsv3.Remove3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Remove3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Rmdir(context.Context, *nfsv3.Rmdir3args) (nfsv3.Rmdir3res, error) {
	return &nfsv3.Rmdir3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Rmdir3resfail{DirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Rename(context.Context, *nfsv3.Rename3args) (nfsv3.Rename3res, error) {
	return &nfsv3.Rename3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Rename3resfail{FromdirWcc: wccNone(), TodirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Link(context.Context, *nfsv3.Link3args) (nfsv3.Link3res, error) {
	return &nfsv3.Link3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Link3resfail{FileAttributes: &nfsv3.PostOpAttr_FALSE{}, LinkdirWcc: wccNone()}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Readdir(context.Context, *nfsv3.Readdir3args) (nfsv3.Readdir3res, error) {
	return &nfsv3.Readdir3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Readdir3resfail{DirAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Readdirplus(context.Context, *nfsv3.Readdirplus3args) (nfsv3.Readdirplus3res, error) {
	return &nfsv3.Readdirplus3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Readdirplus3resfail{DirAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Fsstat(context.Context, *nfsv3.Fsstat3args) (nfsv3.Fsstat3res, error) {
	return &nfsv3.Fsstat3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Fsstat3resfail{ObjAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Fsinfo(context.Context, *nfsv3.Fsinfo3args) (nfsv3.Fsinfo3res, error) {
	return &nfsv3.Fsinfo3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Fsinfo3resfail{ObjAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Pathconf(context.Context, *nfsv3.Pathconf3args) (nfsv3.Pathconf3res, error) {
	return &nfsv3.Pathconf3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Pathconf3resfail{ObjAttributes: &nfsv3.PostOpAttr_FALSE{}}}, nil
}
func (panicFreeNFS) NfsV3Nfsproc3Commit(context.Context, *nfsv3.Commit3args) (nfsv3.Commit3res, error) {
	return &nfsv3.Commit3res_default{Status: nfsv3.NFS3ERR_NOTSUPP, Resfail: nfsv3.Commit3resfail{FileWcc: wccNone()}}, nil
}

// panicFreeMount refuses every mount.
type panicFreeMount struct{}

func (panicFreeMount) MountV1MountprocNull(context.Context) error { return nil }
func (panicFreeMount) MountV1MountprocMnt(context.Context, string) (mount.Fhstatus, error) {
	return &mount.Fhstatus_default{Status: 13}, nil
}
func (panicFreeMount) MountV1MountprocDump(context.Context) (*mount.Mountbody, error) {
	return nil, nil
}
func (panicFreeMount) MountV1MountprocUmnt(context.Context, string) error { return nil }
func (panicFreeMount) MountV1MountprocUmntall(context.Context) error      { return nil }
func (panicFreeMount) MountV1MountprocExport(context.Context) (*mount.Exportnode, error) {
	return nil, nil
}
func (panicFreeMount) MountV3Mountproc3Null(context.Context) error { return nil }
func (panicFreeMount) MountV3Mountproc3Mnt(context.Context, string) (mount.Mountres3, error) {
	return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_ACCES}, nil
}
func (panicFreeMount) MountV3Mountproc3Dump(context.Context) (*mount.Mountbody, error) {
	return nil, nil
}
func (panicFreeMount) MountV3Mountproc3Umnt(context.Context, string) error { return nil }
func (panicFreeMount) MountV3Mountproc3Umntall(context.Context) error      { return nil }
func (panicFreeMount) MountV3Mountproc3Export(context.Context) (*mount.Exportnode, error) {
	return nil, nil
}
