package fsstate

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// ResultFormat is the format-version byte that leads every encoded Result.
const ResultFormat byte = 1

// Presence and flag bits of an encoded Result, in encoding order. A section
// whose bit is clear has its zero value.
const (
	rAttr = 1 << iota
	rVolume
	rDirPre
	rDirPost
	rToDirPre
	rToDirPost
	rObjPre
	rObjPost
	rDirValid
	rToDirValid
	rObjValid
	rSkipped
	rReplayed

	rAll = rReplayed<<1 - 1
)

// EncodeResult returns r's compact, deterministic binary encoding: the
// format byte, a bitmap of the sections present and the flags, Err, then
// each present section (Attr, Volume with its Export, the Pre and Post
// attributes of Dir, ToDir and Obj), integers as varints. Empty slices are
// encoded as absent, so they decode as nil.
func EncodeResult(r Result) []byte {
	var flags uint64
	set := func(bit uint64, cond bool) {
		if cond {
			flags |= bit
		}
	}
	set(rAttr, r.Attr != Attr{})
	set(rVolume, !zeroVolume(&r.Volume))
	set(rDirPre, r.Dir.Pre != Attr{})
	set(rDirPost, r.Dir.Post != Attr{})
	set(rToDirPre, r.ToDir.Pre != Attr{})
	set(rToDirPost, r.ToDir.Post != Attr{})
	set(rObjPre, r.Obj.Pre != Attr{})
	set(rObjPost, r.Obj.Post != Attr{})
	set(rDirValid, r.Dir.Valid)
	set(rToDirValid, r.ToDir.Valid)
	set(rObjValid, r.Obj.Valid)
	set(rSkipped, r.Skipped)
	set(rReplayed, r.Replayed)

	b := make([]byte, 0, 64+8*attrSize)
	b = append(b, ResultFormat)
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(r.Err))
	attr := func(bit uint64, a *Attr) {
		if flags&bit != 0 {
			b = appendAttr(b, a)
		}
	}
	attr(rAttr, &r.Attr)
	if flags&rVolume != 0 {
		v := &r.Volume
		b = binary.AppendUvarint(b, v.ID)
		b = appendString0(b, v.Name)
		b = binary.AppendUvarint(b, v.SizeLimit)
		b = binary.AppendUvarint(b, v.Used)
		b = binary.AppendUvarint(b, v.Inodes)
		b = binary.AppendVarint(b, int64(v.Created))
		b = appendExport(b, &v.Export)
	}
	attr(rDirPre, &r.Dir.Pre)
	attr(rDirPost, &r.Dir.Post)
	attr(rToDirPre, &r.ToDir.Pre)
	attr(rToDirPost, &r.ToDir.Post)
	attr(rObjPre, &r.Obj.Pre)
	attr(rObjPost, &r.Obj.Post)
	return b
}

// zeroVolume reports whether v would decode from an absent section.
func zeroVolume(v *Volume) bool {
	e := &v.Export
	return v.ID == 0 && v.Name == "" && v.SizeLimit == 0 && v.Used == 0 && v.Inodes == 0 &&
		v.Created == 0 && len(e.Clients) == 0 && !e.ReadOnly && e.Squash == 0 &&
		e.AnonUID == 0 && e.AnonGID == 0
}

// attrSize bounds the length of appendAttr's encoding.
const attrSize = 14 * binary.MaxVarintLen64

// appendAttr appends every field of a, in declaration order.
func appendAttr(b []byte, a *Attr) []byte {
	for _, v := range [...]uint64{a.Vol, a.Ino, a.Gen, uint64(a.Type), uint64(a.Mode),
		uint64(a.Nlink), uint64(a.UID), uint64(a.GID), a.Size, a.Used} {
		b = binary.AppendUvarint(b, v)
	}
	for _, t := range [...]Time{a.Atime, a.Mtime, a.Ctime} {
		b = binary.AppendVarint(b, int64(t))
	}
	return binary.AppendUvarint(b, a.Parent)
}

func (d *decoder) attr() Attr {
	const max64 = 1<<64 - 1
	a := Attr{
		Vol:   d.uvarint("attr vol", max64),
		Ino:   d.uvarint("attr ino", max64),
		Gen:   d.uvarint("attr gen", max64),
		Type:  FileType(d.uvarint("attr type", max8)),
		Mode:  uint32(d.uvarint("attr mode", max32)),
		Nlink: uint32(d.uvarint("attr nlink", max32)),
		UID:   uint32(d.uvarint("attr uid", max32)),
		GID:   uint32(d.uvarint("attr gid", max32)),
		Size:  d.uvarint("attr size", max64),
		Used:  d.uvarint("attr used", max64),
		Atime: Time(d.varint("attr atime")),
		Mtime: Time(d.varint("attr mtime")),
		Ctime: Time(d.varint("attr ctime")),
	}
	a.Parent = d.uvarint("attr parent", max64)
	return a
}

// DecodeResult decodes a Result produced by EncodeResult. It never panics:
// malformed or truncated input gives an error wrapping ErrCorrupt. The
// returned Result does not share memory with b.
func DecodeResult(b []byte) (Result, error) {
	if len(b) < 1 || b[0] != ResultFormat {
		return Result{}, fmt.Errorf("%w: result of %d bytes, not in format %d",
			ErrCorrupt, len(b), ResultFormat)
	}
	d := &decoder{b: b[1:], kind: ErrCorrupt}
	flags := d.uvarint("result bitmap", rAll)
	var r Result
	r.Err = syscall.Errno(d.uvarint("result errno", max32))
	has := func(bit uint64) bool { return d.err == nil && flags&bit != 0 }
	attr := func(bit uint64, a *Attr) {
		if has(bit) {
			*a = d.attr()
		}
	}
	attr(rAttr, &r.Attr)
	if has(rVolume) {
		v := &r.Volume
		v.ID = d.uvarint("volume id", 1<<64-1)
		v.Name = d.string0("volume name", MaxWireName)
		v.SizeLimit = d.uvarint("volume size limit", 1<<64-1)
		v.Used = d.uvarint("volume used", 1<<64-1)
		v.Inodes = d.uvarint("volume inodes", 1<<64-1)
		v.Created = Time(d.varint("volume created"))
		v.Export = d.export()
	}
	attr(rDirPre, &r.Dir.Pre)
	attr(rDirPost, &r.Dir.Post)
	attr(rToDirPre, &r.ToDir.Pre)
	attr(rToDirPost, &r.ToDir.Post)
	attr(rObjPre, &r.Obj.Pre)
	attr(rObjPost, &r.Obj.Post)
	r.Dir.Valid = has(rDirValid)
	r.ToDir.Valid = has(rToDirValid)
	r.Obj.Valid = has(rObjValid)
	r.Skipped = has(rSkipped)
	r.Replayed = has(rReplayed)
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes in result", len(d.b))
	}
	if d.err != nil {
		return Result{}, d.err
	}
	return r, nil
}
