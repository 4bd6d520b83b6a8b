// Package mount is keel's MOUNT protocol version 3 service (RFC 1813
// appendix I): each volume is exported at /NAME to the client networks of its
// export settings; MNT answers with the volume's root file handle. Version 1
// answers NULL and EXPORT and refuses MNT (it would need NFSv2 handles).
package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/rpcv2"

	"keel/internal/fsstate"
	"keel/internal/nfs/fh"
	"keel/internal/nfs/rpc"
)

// Viewer gives the replicated state after a read-index barrier.
type Viewer interface {
	View(ctx context.Context) (*fsstate.Store, error)
}

// Service implements mount.MountProgram.
type Service struct {
	FS      Viewer
	Handles *fh.Codec

	mu     sync.Mutex
	mounts map[[2]string]struct{} // host, path: what DUMP reports (advisory, as on Linux)
}

var _ mount.MountProgram = (*Service)(nil)

func (s *Service) view(ctx context.Context) (*fsstate.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.FS.View(ctx)
}

func host(ctx context.Context) string {
	if c, ok := rpc.CallFrom(ctx); ok {
		if c.Sys != nil && c.Sys.Machinename != "" {
			return c.Sys.Machinename
		}
		return c.Remote.Addr().String()
	}
	return ""
}

// openSnapshot finds snapshot name of a volume and opens it.
func openSnapshot(st *fsstate.Store, vol uint64, name string) (*fsstate.Store, uint64, error) {
	snaps, err := st.Snapshots(vol)
	if err != nil {
		return nil, 0, err
	}
	for _, sn := range snaps {
		if sn.Name == name && !sn.Missing {
			ss, err := st.OpenSnapshot(vol, name)
			return ss, sn.Index, err
		}
	}
	return nil, 0, errors.New("mount: no such snapshot")
}

// Mnt resolves /NAME to the root handle of volume NAME.
func (s *Service) MountV3Mountproc3Mnt(ctx context.Context, path string) (mount.Mountres3, error) {
	if len(path) > 1024 {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NAMETOOLONG}, nil
	}
	// /NAME is the volume; /NAME/sub/dir mounts a directory inside it, as
	// Linux's mountd allows.
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if len(parts) == 0 {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NOENT}, nil
	}
	for _, c := range parts {
		if c == "." || c == ".." {
			return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_INVAL}, nil
		}
	}
	name, snapName, isSnap := strings.Cut(parts[0], "@")
	st, err := s.view(ctx)
	if err != nil {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_SERVERFAULT}, nil
	}
	v, err := st.VolumeByName(name)
	if err != nil {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NOENT}, nil
	}
	if c, ok := rpc.CallFrom(ctx); ok && !v.Export.Allows(c.Remote.Addr()) {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_ACCES}, nil
	}
	// /VOLUME@SNAPSHOT mounts a snapshot, read-only.
	var snapIndex uint64
	if isSnap {
		if st, snapIndex, err = openSnapshot(st, v.ID, snapName); err != nil {
			return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NOENT}, nil
		}
	}
	root, err := st.GetAttr(v.ID, fsstate.RootIno)
	if err != nil {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_IO}, nil
	}
	for _, c := range parts[1:] {
		if root, err = st.Lookup(v.ID, root.Ino, c); err != nil {
			return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NOENT}, nil
		}
	}
	if root.Type != fsstate.TypeDir {
		return &mount.Mountres3_default{FhsStatus: mount.MNT3ERR_NOTDIR}, nil
	}
	s.mu.Lock()
	if s.mounts == nil {
		s.mounts = map[[2]string]struct{}{}
	}
	s.mounts[[2]string{host(ctx), "/" + strings.Join(parts, "/")}] = struct{}{}
	s.mu.Unlock()
	return &mount.Mountres3_MNT3_OK{Mountinfo: mount.Mountres3Ok{
		Fhandle:     s.Handles.Encode(fh.Handle{Vol: v.ID, Ino: root.Ino, Gen: root.Gen, Snap: snapIndex}),
		AuthFlavors: []int32{int32(rpcv2.AUTH_SYS), int32(rpcv2.AUTH_NONE)},
	}}, nil
}

func (s *Service) MountV3Mountproc3Null(context.Context) error { return nil }

func (s *Service) MountV3Mountproc3Dump(ctx context.Context) (*mount.Mountbody, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([][2]string, 0, len(s.mounts))
	for k := range s.mounts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] > keys[j][0]+keys[j][1] })
	var head *mount.Mountbody
	for _, k := range keys {
		head = &mount.Mountbody{MlHostname: k[0], MlDirectory: k[1], MlNext: head}
	}
	return head, nil
}

func (s *Service) MountV3Mountproc3Umnt(ctx context.Context, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mounts, [2]string{host(ctx), "/" + strings.Trim(path, "/")})
	return nil
}

func (s *Service) MountV3Mountproc3Umntall(ctx context.Context) error {
	h := host(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.mounts {
		if k[0] == h {
			delete(s.mounts, k)
		}
	}
	return nil
}

// Export lists every volume with the client networks it is exported to.
func (s *Service) MountV3Mountproc3Export(ctx context.Context) (*mount.Exportnode, error) {
	st, err := s.view(ctx)
	if err != nil {
		return nil, fmt.Errorf("mount: this node cannot answer now (%v): %w", err, rpc.ErrSystem)
	}
	vols, err := st.Volumes()
	if err != nil {
		return nil, fmt.Errorf("mount: %v: %w", err, rpc.ErrSystem)
	}
	var head *mount.Exportnode
	for i := len(vols) - 1; i >= 0; i-- {
		var groups *mount.Groupnode
		cl := vols[i].Export.Clients
		for j := len(cl) - 1; j >= 0; j-- {
			groups = &mount.Groupnode{GrName: cl[j], GrNext: groups}
		}
		snaps, _ := st.Snapshots(vols[i].ID)
		for j := len(snaps) - 1; j >= 0; j-- {
			head = &mount.Exportnode{ExDir: "/" + vols[i].Name + "@" + snaps[j].Name, ExGroups: groups, ExNext: head}
		}
		head = &mount.Exportnode{ExDir: "/" + vols[i].Name, ExGroups: groups, ExNext: head}
	}
	return head, nil
}

// Version 1 is not offered (see V3Only); these satisfy the generated
// interface.
func (s *Service) MountV1MountprocNull(context.Context) error { return nil }
func (s *Service) MountV1MountprocMnt(context.Context, string) (mount.Fhstatus, error) {
	return &mount.Fhstatus_default{Status: uint32(mount.MNT3ERR_NOTSUPP)}, nil
}
func (s *Service) MountV1MountprocDump(context.Context) (*mount.Mountbody, error) {
	return nil, errV1
}
func (s *Service) MountV1MountprocUmnt(context.Context, string) error { return errV1 }
func (s *Service) MountV1MountprocUmntall(context.Context) error      { return errV1 }
func (s *Service) MountV1MountprocExport(context.Context) (*mount.Exportnode, error) {
	return nil, errV1
}

var errV1 = errors.New("mount: version 1 is not served")

// V3Only wraps the generated MOUNT service so that only version 3 is
// served: other versions get PROG_MISMATCH (3, 3). (Version 1 exists for
// NFSv2, which keel does not serve; its generated encoders also cannot
// encode an empty list.)
func V3Only(svc rpc.Service) rpc.Service {
	return func(ctx context.Context, vers, proc uint32, args io.ReadCloser, ret func(int) io.Writer) (rpcv2.AcceptedReplyData, error) {
		if vers != 3 {
			args.Close()
			var mm rpcv2.AcceptedReplyData_PROG_MISMATCH
			mm.MismatchInfo.Low, mm.MismatchInfo.High = 3, 3
			return &mm, nil
		}
		return svc(ctx, vers, proc, args, ret)
	}
}
