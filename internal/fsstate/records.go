package fsstate

import (
	"encoding/binary"
	"fmt"
)

// storeFormat is the version of the key layout and record encodings below,
// kept under keyFormat. Open refuses a store with any other value.
const storeFormat byte = 1

// Key prefixes (see the package comment for the layout).
const (
	pMeta   = 'm'
	pVolume = 'v'
	pName   = 'n'
	pInode  = 'i'
	pDent   = 'd'
	pCookie = 'e'
	pChunk  = 'c'
	pSnap   = 's' // volume snapshot records (volsnap.go)
	pClust  = 'k' // cluster records: members, join tokens (cluster.go)

	pReply     = 'r' // duplicate request cache: reply records (drc.go)
	pReplyTime = 'R' // duplicate request cache: records by time
)

var (
	keyFormat  = []byte("m/format")
	keyApplied = []byte("m/applied")
	keyNextVol = []byte("m/nextvol")
)

func be(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func volKey(vol uint64) []byte { return be([]byte{pVolume}, vol) }

func nameKey(name string) []byte { return append([]byte{pName}, name...) }

func inoKey(vol, ino uint64) []byte {
	k := make([]byte, 1, 17)
	k[0] = pInode
	return be(k, vol, ino)
}

func dentKey(vol, dir uint64, name string) []byte {
	k := make([]byte, 1, 17+len(name))
	k[0] = pDent
	return append(be(k, vol, dir), name...)
}

func cookieKey(vol, dir, cookie uint64) []byte {
	k := make([]byte, 1, 25)
	k[0] = pCookie
	return be(k, vol, dir, cookie)
}

func chunkKey(vol, ino, idx uint64) []byte {
	k := make([]byte, 1, 25)
	k[0] = pChunk
	return be(k, vol, ino, idx)
}

func snapKey(vol uint64, name string) []byte {
	k := make([]byte, 1, 9+len(name))
	k[0] = pSnap
	return append(be(k, vol), name...)
}

// volPrefixes are the prefixes of the keys that hold a volume's content, each
// followed by the volume id: what a clone copies and a revert replaces.
var volPrefixes = [...]byte{pInode, pDent, pCookie, pChunk}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// volume is the stored volume record: the public Volume plus the counters
// from which inode and generation numbers are allocated.
type volume struct {
	Volume
	NextIno uint64
	NextGen uint64
}

// Volume record versions. Version 1 had no export settings; such a record
// decodes with DefaultExport.
const (
	volumeRecV1 = 1
	volumeRecV  = 2
)

// volumeFixed is the length of a volume record up to its name: the version,
// id, size limit, used, inodes, created, next inode, next generation (8 bytes
// each) and the name's length.
const volumeFixed = 1 + 8*7 + 1

// encode returns the record: the fixed part, the name, then the export as
// appendExport writes it.
func (v *volume) encode() []byte {
	b := make([]byte, 0, volumeFixed+len(v.Name)+exportSize(&v.Export))
	b = append(b, volumeRecV)
	b = be(b, v.ID, v.SizeLimit, v.Used, v.Inodes, uint64(v.Created), v.NextIno, v.NextGen)
	b = append(b, byte(len(v.Name)))
	b = append(b, v.Name...)
	return appendExport(b, &v.Export)
}

func decodeVolume(b []byte) (*volume, error) {
	if len(b) < volumeFixed || (b[0] != volumeRecV && b[0] != volumeRecV1) ||
		len(b) < volumeFixed+int(b[volumeFixed-1]) {
		return nil, fmt.Errorf("%w: volume record of %d bytes", ErrCorrupt, len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	nameEnd := volumeFixed + int(b[volumeFixed-1])
	v := &volume{
		Volume: Volume{
			ID: u(0), SizeLimit: u(1), Used: u(2), Inodes: u(3), Created: Time(u(4)),
			Name: string(b[volumeFixed:nameEnd]),
		},
		NextIno: u(5),
		NextGen: u(6),
	}
	if b[0] == volumeRecV1 {
		if len(b) != nameEnd {
			return nil, fmt.Errorf("%w: volume record of %d bytes", ErrCorrupt, len(b))
		}
		v.Export = DefaultExport()
		return v, nil
	}
	d := &decoder{b: b[nameEnd:], kind: ErrCorrupt}
	v.Export = d.export()
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes in volume record", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w (record of volume %d)", d.err, v.ID)
	}
	return v, nil
}

// inode is the stored inode record: the public Attr (Vol and Ino come from
// the key) plus per-type state.
type inode struct {
	Attr
	NextCookie uint64 // directories: the cookie the next entry gets
	Entries    uint64 // directories: number of entries ("." and ".." excluded)
	HasVerf    bool   // created with CreateExclusive
	Verf       uint64 // its verifier
	Target     string // symlinks
}

const inodeRecV = 1

// inode record: version, type, hasVerf, mode, nlink, uid, gid (4 bytes each),
// gen, size, used, atime, mtime, ctime, parent, nextCookie, entries, verf
// (8 bytes each), then the symlink target.
const inodeFixed = 3 + 4*4 + 8*10

func (n *inode) encode() []byte {
	b := make([]byte, 0, inodeFixed+len(n.Target))
	hv := byte(0)
	if n.HasVerf {
		hv = 1
	}
	b = append(b, inodeRecV, byte(n.Type), hv)
	b = binary.BigEndian.AppendUint32(b, n.Mode)
	b = binary.BigEndian.AppendUint32(b, n.Nlink)
	b = binary.BigEndian.AppendUint32(b, n.UID)
	b = binary.BigEndian.AppendUint32(b, n.GID)
	b = be(b, n.Gen, n.Size, n.Used, uint64(n.Atime), uint64(n.Mtime), uint64(n.Ctime),
		n.Parent, n.NextCookie, n.Entries, n.Verf)
	return append(b, n.Target...)
}

func decodeInode(vol, ino uint64, b []byte) (*inode, error) {
	if len(b) < inodeFixed || b[0] != inodeRecV || b[2] > 1 {
		return nil, fmt.Errorf("%w: inode %d/%d record of %d bytes", ErrCorrupt, vol, ino, len(b))
	}
	u32 := func(i int) uint32 { return binary.BigEndian.Uint32(b[3+4*i:]) }
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[3+16+8*i:]) }
	n := &inode{
		Attr: Attr{
			Vol: vol, Ino: ino, Type: FileType(b[1]),
			Mode: u32(0), Nlink: u32(1), UID: u32(2), GID: u32(3),
			Gen: u(0), Size: u(1), Used: u(2),
			Atime: Time(u(3)), Mtime: Time(u(4)), Ctime: Time(u(5)), Parent: u(6),
		},
		NextCookie: u(7),
		Entries:    u(8),
		HasVerf:    b[2] == 1,
		Verf:       u(9),
		Target:     string(b[inodeFixed:]),
	}
	return n, nil
}

// dirBlock is the size a directory reports per block of entries.
const dirBlock = 4096

// dirEntriesPerBlock is how many entries one reported directory block holds.
const dirEntriesPerBlock = 128

// setEntries sets a directory's entry count and the size derived from it: one
// 4 KiB block per 128 entries, at least one block (what ext4 reports for a
// small directory).
func (n *inode) setEntries(e uint64) {
	n.Entries = e
	n.Size = dirBlock * (1 + e/dirEntriesPerBlock)
	n.Used = n.Size
}

// dent is a stored directory entry: the inode it names and its cookie.
type dent struct {
	Ino    uint64
	Cookie uint64
}

func (d dent) encode() []byte { return be(make([]byte, 0, 16), d.Ino, d.Cookie) }

func decodeDent(b []byte) (dent, error) {
	if len(b) != 16 {
		return dent{}, fmt.Errorf("%w: directory entry of %d bytes", ErrCorrupt, len(b))
	}
	return dent{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, nil
}

// snapRec is the record of a volume snapshot, under snapKey(vol, name).
type snapRec struct {
	Created Time
	Index   uint64
	Used    uint64
	Inodes  uint64
	VolName string
}

const snapRecV = 1

// snapRecFixed is the length of a snapshot record up to the volume name:
// version, created, index, used, inodes and the name's length.
const snapRecFixed = 1 + 8*4 + 1

func (r *snapRec) encode() []byte {
	b := make([]byte, 0, snapRecFixed+len(r.VolName))
	b = append(b, snapRecV)
	b = be(b, uint64(r.Created), r.Index, r.Used, r.Inodes)
	b = append(b, byte(len(r.VolName)))
	return append(b, r.VolName...)
}

func decodeSnapRec(b []byte) (snapRec, error) {
	if len(b) < snapRecFixed || b[0] != snapRecV || len(b) != snapRecFixed+int(b[snapRecFixed-1]) {
		return snapRec{}, fmt.Errorf("%w: volume snapshot record of %d bytes", ErrCorrupt, len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	return snapRec{Created: Time(u(0)), Index: u(1), Used: u(2), Inodes: u(3),
		VolName: string(b[snapRecFixed:])}, nil
}

// appliedRec is the value under keyApplied.
type appliedRec struct {
	Index, Term, Bytes uint64
}

func (a appliedRec) encode() []byte { return be(make([]byte, 0, 24), a.Index, a.Term, a.Bytes) }

func decodeApplied(b []byte) (appliedRec, error) {
	if len(b) != 24 {
		return appliedRec{}, fmt.Errorf("%w: applied record of %d bytes", ErrCorrupt, len(b))
	}
	return appliedRec{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]),
		binary.BigEndian.Uint64(b[16:])}, nil
}
