package fsstate

import (
	"encoding/binary"
	"fmt"
)

// CommandFormat is the format-version byte that leads every encoded Command.
const CommandFormat byte = 1

// Wire limits enforced by DecodeCommand.
const (
	// MaxWireName is the longest string field (names, symlink target) accepted
	// on the wire. Semantic limits (MaxNameLen, …) are checked when applying.
	MaxWireName = 4096
	// MaxWireTarget is the longest symlink target accepted on the wire: more
	// than MaxSymlinkLen, so that applying an over-long target reports
	// ENAMETOOLONG rather than an undecodable command.
	MaxWireTarget = 2 * MaxSymlinkLen
	// MaxWireGIDs is the largest number of supplementary groups in a Cred.
	MaxWireGIDs = 1024
	// MaxRequestClient is the longest RequestID.Client accepted.
	MaxRequestClient = 255
)

// Presence bits of the optional fields of an encoded command, in encoding
// order. A field whose bit is clear has its zero value.
const (
	fTime = 1 << iota
	fCred
	fVolName
	fSizeLimit
	fForce
	fVol
	fIno
	fDir
	fName
	fToDir
	fToName
	fType
	fMode
	fUID
	fGID
	fTarget
	fCMode
	fVerf
	fOffset
	fData
	fSetMode
	fSetUID
	fSetGID
	fSetSize
	fSetAtime
	fSetMtime
	fGuard
	fExport
	fReq
	fSnapName

	fAll = fSnapName<<1 - 1
)

// Encode returns the command's compact, deterministic binary encoding: the
// format byte, the op, a bitmap of the fields present, then each present
// field (integers as varints, strings and Data length-prefixed and raw).
// Empty strings and slices are encoded as absent, so they decode as "" / nil.
func (c *Command) Encode() []byte {
	var flags uint64
	set := func(bit uint64, cond bool) {
		if cond {
			flags |= bit
		}
	}
	set(fTime, c.Time != 0)
	set(fCred, c.Cred != nil)
	set(fVolName, c.VolName != "")
	set(fSizeLimit, c.SizeLimit != 0)
	set(fForce, c.Force)
	set(fVol, c.Vol != 0)
	set(fIno, c.Ino != 0)
	set(fDir, c.Dir != 0)
	set(fName, c.Name != "")
	set(fToDir, c.ToDir != 0)
	set(fToName, c.ToName != "")
	set(fType, c.Type != 0)
	set(fMode, c.Mode != 0)
	set(fUID, c.UID != 0)
	set(fGID, c.GID != 0)
	set(fTarget, c.Target != "")
	set(fCMode, c.CMode != 0)
	set(fVerf, c.Verf != 0)
	set(fOffset, c.Offset != 0)
	set(fData, len(c.Data) != 0)
	set(fSetMode, c.Set.Mode != nil)
	set(fSetUID, c.Set.UID != nil)
	set(fSetGID, c.Set.GID != nil)
	set(fSetSize, c.Set.Size != nil)
	set(fSetAtime, c.Set.Atime != nil)
	set(fSetMtime, c.Set.Mtime != nil)
	set(fGuard, c.Guard != nil)
	set(fExport, c.Export != nil)
	set(fReq, c.Req != nil)
	set(fSnapName, c.SnapName != "")

	n := 2 + binary.MaxVarintLen64*24 + len(c.VolName) + len(c.Name) + len(c.ToName) +
		len(c.Target) + len(c.Data) + len(c.SnapName)
	if c.Cred != nil {
		n += binary.MaxVarintLen32 * (3 + len(c.Cred.GIDs))
	}
	if c.Export != nil {
		n += exportSize(c.Export)
	}
	if c.Req != nil {
		n += 1 + len(c.Req.Client) + 2*binary.MaxVarintLen32 + len(c.Req.ArgHash)
	}
	b := make([]byte, 0, n)
	b = append(b, CommandFormat, byte(c.Op))
	b = binary.AppendUvarint(b, flags)
	u := func(bit uint64, v uint64) {
		if flags&bit != 0 {
			b = binary.AppendUvarint(b, v)
		}
	}
	i := func(bit uint64, v int64) {
		if flags&bit != 0 {
			b = binary.AppendVarint(b, v)
		}
	}
	s := func(bit uint64, v string) {
		if flags&bit != 0 {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	i(fTime, int64(c.Time))
	if c.Cred != nil {
		b = binary.AppendUvarint(b, uint64(c.Cred.UID))
		b = binary.AppendUvarint(b, uint64(c.Cred.GID))
		b = binary.AppendUvarint(b, uint64(len(c.Cred.GIDs)))
		for _, g := range c.Cred.GIDs {
			b = binary.AppendUvarint(b, uint64(g))
		}
	}
	s(fVolName, c.VolName)
	u(fSizeLimit, c.SizeLimit)
	u(fVol, c.Vol)
	u(fIno, c.Ino)
	u(fDir, c.Dir)
	s(fName, c.Name)
	u(fToDir, c.ToDir)
	s(fToName, c.ToName)
	u(fType, uint64(c.Type))
	u(fMode, uint64(c.Mode))
	u(fUID, uint64(c.UID))
	u(fGID, uint64(c.GID))
	s(fTarget, c.Target)
	u(fCMode, uint64(c.CMode))
	u(fVerf, c.Verf)
	u(fOffset, c.Offset)
	if flags&fData != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Data)))
		b = append(b, c.Data...)
	}
	if c.Set.Mode != nil {
		b = binary.AppendUvarint(b, uint64(*c.Set.Mode))
	}
	if c.Set.UID != nil {
		b = binary.AppendUvarint(b, uint64(*c.Set.UID))
	}
	if c.Set.GID != nil {
		b = binary.AppendUvarint(b, uint64(*c.Set.GID))
	}
	if c.Set.Size != nil {
		b = binary.AppendUvarint(b, *c.Set.Size)
	}
	if c.Set.Atime != nil {
		b = binary.AppendVarint(b, int64(*c.Set.Atime))
	}
	if c.Set.Mtime != nil {
		b = binary.AppendVarint(b, int64(*c.Set.Mtime))
	}
	if c.Guard != nil {
		b = binary.AppendVarint(b, int64(*c.Guard))
	}
	if c.Export != nil {
		b = appendExport(b, c.Export)
	}
	if c.Req != nil {
		b = appendString0(b, c.Req.Client)
		b = binary.AppendUvarint(b, uint64(c.Req.XID))
		b = binary.AppendUvarint(b, uint64(c.Req.Proc))
		b = append(b, c.Req.ArgHash[:]...)
	}
	s(fSnapName, c.SnapName)
	return b
}

// appendString0 appends s length-prefixed; unlike the optional string fields
// of a command it may be empty.
func appendString0(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// exportSize bounds the length of appendExport's encoding of e.
func exportSize(e *Export) int {
	n := 5 * binary.MaxVarintLen32
	for _, c := range e.Clients {
		n += binary.MaxVarintLen32 + len(c)
	}
	return n
}

// appendExport appends an export: a flags varint (bit 0: ReadOnly), the
// squash mode, AnonUID, AnonGID, the number of clients and each client
// length-prefixed. Commands, results and volume records all use it.
func appendExport(b []byte, e *Export) []byte {
	var flags uint64
	if e.ReadOnly {
		flags |= 1
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendUvarint(b, uint64(e.Squash))
	b = binary.AppendUvarint(b, uint64(e.AnonUID))
	b = binary.AppendUvarint(b, uint64(e.AnonGID))
	b = binary.AppendUvarint(b, uint64(len(e.Clients)))
	for _, c := range e.Clients {
		b = appendString0(b, c)
	}
	return b
}

// DecodeCommand decodes a command produced by Encode. It never panics: any
// malformed, truncated or oversized input gives an error wrapping
// ErrBadCommand. The returned command does not share memory with b.
func DecodeCommand(b []byte) (*Command, error) {
	return decodeCommand(b, true)
}

// decoder reads an encoded command or record; the first error sticks.
type decoder struct {
	b    []byte
	err  error
	kind error // wrapped by every error; nil means ErrBadCommand
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		kind := d.kind
		if kind == nil {
			kind = ErrBadCommand
		}
		d.err = fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)
	}
}

// string0 reads a length-prefixed string that may be empty.
func (d *decoder) string0(what string, max uint64) string {
	n := d.uvarint(what+" length", max)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail("%s truncated (%d of %d bytes)", what, len(d.b), n)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// raw reads exactly len(dst) bytes into dst.
func (d *decoder) raw(what string, dst []byte) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(dst) {
		d.fail("%s truncated (%d of %d bytes)", what, len(d.b), len(dst))
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// export reads what appendExport wrote. An empty client list decodes as nil.
func (d *decoder) export() Export {
	var e Export
	flags := d.uvarint("export flags", 1)
	e.ReadOnly = flags&1 != 0
	e.Squash = Squash(d.uvarint("export squash", max8))
	e.AnonUID = uint32(d.uvarint("export anonuid", max32))
	e.AnonGID = uint32(d.uvarint("export anongid", max32))
	n := d.uvarint("export client count", MaxExportClients)
	if n > 0 && d.err == nil {
		e.Clients = make([]string, 0, min(n, uint64(len(d.b))))
		for range n {
			c := d.string0("export client", MaxWireName)
			if d.err != nil {
				break
			}
			e.Clients = append(e.Clients, c)
		}
	}
	if d.err != nil {
		return Export{}
	}
	return e
}

func (d *decoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint for %s", what)
		return 0
	}
	if v > max {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint for %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string, max uint64) []byte {
	n := d.uvarint(what+" length", max)
	if d.err != nil {
		return nil
	}
	if n == 0 {
		d.fail("empty %s marked present", what)
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail("%s truncated (%d of %d bytes)", what, len(d.b), n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

const (
	max32 = 1<<32 - 1
	max8  = 1<<8 - 1
)

func decodeCommand(b []byte, copyData bool) (*Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrBadCommand, len(b))
	}
	if b[0] != CommandFormat {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrBadCommand, b[0])
	}
	c := &Command{Op: Op(b[1])}
	if c.Op > lastOp {
		return nil, fmt.Errorf("%w: unknown op %d", ErrBadCommand, b[1])
	}
	d := &decoder{b: b[2:]}
	flags := d.uvarint("field bitmap", fAll)
	has := func(bit uint64) bool { return d.err == nil && flags&bit != 0 }
	if has(fTime) {
		c.Time = Time(d.varint("time"))
	}
	if has(fCred) {
		cr := &Cred{}
		cr.UID = uint32(d.uvarint("cred uid", max32))
		cr.GID = uint32(d.uvarint("cred gid", max32))
		n := d.uvarint("cred gid count", MaxWireGIDs)
		if n > 0 && d.err == nil {
			cr.GIDs = make([]uint32, 0, min(n, uint64(len(d.b))))
			for range n {
				cr.GIDs = append(cr.GIDs, uint32(d.uvarint("cred gids", max32)))
			}
		}
		c.Cred = cr
	}
	str := func(bit uint64, what string) string {
		if has(bit) {
			max := uint64(MaxWireName)
			if bit == fTarget {
				max = MaxWireTarget
			}
			return string(d.bytes(what, max))
		}
		return ""
	}
	u := func(bit uint64, what string, max uint64) uint64 {
		if has(bit) {
			return d.uvarint(what, max)
		}
		return 0
	}
	c.VolName = str(fVolName, "volume name")
	c.SizeLimit = u(fSizeLimit, "size limit", 1<<64-1)
	c.Force = has(fForce)
	c.Vol = u(fVol, "volume", 1<<64-1)
	c.Ino = u(fIno, "inode", 1<<64-1)
	c.Dir = u(fDir, "directory", 1<<64-1)
	c.Name = str(fName, "name")
	c.ToDir = u(fToDir, "destination directory", 1<<64-1)
	c.ToName = str(fToName, "destination name")
	c.Type = FileType(u(fType, "type", max8))
	c.Mode = uint32(u(fMode, "mode", max32))
	c.UID = uint32(u(fUID, "uid", max32))
	c.GID = uint32(u(fGID, "gid", max32))
	c.Target = str(fTarget, "symlink target")
	c.CMode = CreateMode(u(fCMode, "create mode", max8))
	c.Verf = u(fVerf, "verifier", 1<<64-1)
	c.Offset = u(fOffset, "offset", 1<<64-1)
	if has(fData) {
		data := d.bytes("data", MaxEntryData)
		if copyData && data != nil {
			data = append([]byte(nil), data...)
		}
		c.Data = data
	}
	if has(fSetMode) {
		v := uint32(d.uvarint("set mode", max32))
		c.Set.Mode = &v
	}
	if has(fSetUID) {
		v := uint32(d.uvarint("set uid", max32))
		c.Set.UID = &v
	}
	if has(fSetGID) {
		v := uint32(d.uvarint("set gid", max32))
		c.Set.GID = &v
	}
	if has(fSetSize) {
		v := d.uvarint("set size", 1<<64-1)
		c.Set.Size = &v
	}
	if has(fSetAtime) {
		v := Time(d.varint("set atime"))
		c.Set.Atime = &v
	}
	if has(fSetMtime) {
		v := Time(d.varint("set mtime"))
		c.Set.Mtime = &v
	}
	if has(fGuard) {
		v := Time(d.varint("guard"))
		c.Guard = &v
	}
	if has(fExport) {
		e := d.export()
		c.Export = &e
	}
	if has(fReq) {
		r := &RequestID{}
		r.Client = d.string0("request client", MaxRequestClient)
		r.XID = uint32(d.uvarint("request xid", max32))
		r.Proc = uint32(d.uvarint("request proc", max32))
		d.raw("request argument hash", r.ArgHash[:])
		c.Req = r
	}
	c.SnapName = str(fSnapName, "snapshot name")
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}
