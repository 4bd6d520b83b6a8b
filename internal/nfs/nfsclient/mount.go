package nfsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
)

// MOUNT version 3 procedures (RFC 1813 appendix I).
const (
	MountProgram = mount.MOUNT_PROGRAM_PROGRAM_NUMBER
	MountVersion = 3

	MountProcNull    uint32 = 0
	MountProcMnt     uint32 = 1
	MountProcDump    uint32 = 2
	MountProcUmnt    uint32 = 3
	MountProcUmntall uint32 = 4
	MountProcExport  uint32 = 5
)

// Mount asks MOUNT for the root handle of the export at path (e.g. "/data").
// The status is MNT3_OK or the server's MNT3ERR_*; on an error it is
// MNT3ERR_SERVERFAULT.
func (c *Client) Mount(ctx context.Context, path string) ([]byte, mount.Mountstat3, error) {
	var res mount.Mountres3
	if err := c.Call(ctx, MountProgram, MountVersion, MountProcMnt, String(path), Into(&res, mount.ReadMountres3)); err != nil {
		return nil, mount.MNT3ERR_SERVERFAULT, err
	}
	if ok, _ := res.(*mount.Mountres3_MNT3_OK); ok != nil {
		return ok.Mountinfo.Fhandle, mount.MNT3_OK, nil
	}
	return nil, res.GetFhsStatus(), nil
}

// Umnt tells MOUNT that this client no longer uses path.
func (c *Client) Umnt(ctx context.Context, path string) error {
	return c.Call(ctx, MountProgram, MountVersion, MountProcUmnt, String(path), nil)
}

// Umntall tells MOUNT that this client uses none of its exports.
func (c *Client) Umntall(ctx context.Context) error {
	return c.Call(ctx, MountProgram, MountVersion, MountProcUmntall, nil, nil)
}

// MountEntry is one (host, directory) pair of MOUNT's DUMP.
type MountEntry struct{ Host, Dir string }

// MountDump lists the mounts the server remembers.
func (c *Client) MountDump(ctx context.Context) ([]MountEntry, error) {
	var head *mount.Mountbody
	if err := c.Call(ctx, MountProgram, MountVersion, MountProcDump, nil, Into(&head, mount.ReadMountlist)); err != nil {
		return nil, err
	}
	var out []MountEntry
	for e, i := head, 0; e != nil && i < 1<<16; e, i = e.MlNext, i+1 {
		out = append(out, MountEntry{Host: e.MlHostname, Dir: e.MlDirectory})
	}
	return out, nil
}

// Export is one entry of MOUNT's EXPORT list.
type Export struct {
	Dir    string
	Groups []string // the clients allowed, as the server names them
}

// Exports lists what the server exports.
func (c *Client) Exports(ctx context.Context) ([]Export, error) {
	var head *mount.Exportnode
	if err := c.Call(ctx, MountProgram, MountVersion, MountProcExport, nil, Into(&head, mount.ReadExports)); err != nil {
		return nil, err
	}
	var out []Export
	for e, i := head, 0; e != nil && i < 1<<16; e, i = e.ExNext, i+1 {
		x := Export{Dir: e.ExDir}
		for g, j := e.ExGroups, 0; g != nil && j < 1<<16; g, j = g.GrNext, j+1 {
			x.Groups = append(x.Groups, g.GrName)
		}
		out = append(out, x)
	}
	return out, nil
}

// Portmapper (RFC 1833 version 2).
const (
	PortmapProgram = 100000
	PortmapVersion = 2

	PortmapProcNull    uint32 = 0
	PortmapProcGetport uint32 = 3
	PortmapProcDump    uint32 = 4

	IPProtoTCP = 6
	IPProtoUDP = 17
)

// Mapping is one portmapper registration.
type Mapping struct{ Prog, Vers, Prot, Port uint32 }

// GetPort asks the portmapper where program prog version vers is served
// over protocol prot (0: not registered).
func (c *Client) GetPort(ctx context.Context, prog, vers, prot uint32) (uint32, error) {
	var port uint32
	err := c.Call(ctx, PortmapProgram, PortmapVersion, PortmapProcGetport, Uint32s(prog, vers, prot, 0),
		ReaderFunc(func(r io.Reader) (int64, error) {
			var b [4]byte
			n, err := io.ReadFull(r, b[:])
			port = binary.BigEndian.Uint32(b[:])
			return int64(n), err
		}))
	return port, err
}

// PortmapDump lists the portmapper's registrations.
func (c *Client) PortmapDump(ctx context.Context) ([]Mapping, error) {
	var out []Mapping
	err := c.Call(ctx, PortmapProgram, PortmapVersion, PortmapProcDump, nil,
		ReaderFunc(func(r io.Reader) (int64, error) {
			var total int64
			for i := 0; i < 1<<16; i++ {
				var more [4]byte
				n, err := io.ReadFull(r, more[:])
				total += int64(n)
				if err != nil {
					return total, err
				}
				if binary.BigEndian.Uint32(more[:]) == 0 {
					return total, nil
				}
				var m [16]byte
				n, err = io.ReadFull(r, m[:])
				total += int64(n)
				if err != nil {
					return total, err
				}
				out = append(out, Mapping{Prog: binary.BigEndian.Uint32(m[0:]), Vers: binary.BigEndian.Uint32(m[4:]),
					Prot: binary.BigEndian.Uint32(m[8:]), Port: binary.BigEndian.Uint32(m[12:])})
			}
			return total, errors.New("nfsclient: portmapper list too long")
		}))
	if err != nil {
		return nil, fmt.Errorf("portmapper DUMP: %w", err)
	}
	return out, nil
}
