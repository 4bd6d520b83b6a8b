package nfs3

import (
	"encoding/binary"

	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"
)

// Reply bounds (for rpc.Server.ReplyBound).
const (
	// SmallReply bounds the reply of every NFS procedure but READ, READDIR
	// and READDIRPLUS, and of MOUNT and the portmapper: attributes,
	// handles, a symlink's target, a short list.
	SmallReply = 8 << 10
	// replySlack covers what READ, READDIR and READDIRPLUS add to the
	// count they are given: the RPC header, status, attributes, verifier.
	replySlack = 512
	// Procedure numbers (RFC 1813).
	procRead        = 6
	procReaddir     = 16
	procReaddirplus = 17
)

// ReplyBound returns the most bytes the reply to a call may take: READ,
// READDIR and READDIRPLUS at most the count the client asked for (at most
// MaxIO), other calls SmallReply. args may be only the start of the
// arguments; when the count is not in it, the bound is the largest.
func ReplyBound(prog, vers, proc uint32, args []byte) int {
	if prog != nfsv3.NFS_PROGRAM_PROGRAM_NUMBER || vers != 3 {
		return SmallReply
	}
	var skip int // bytes between the file handle and the count
	switch proc {
	case procRead: // file handle, offset, count
		skip = 8
	case procReaddir: // directory handle, cookie, verifier, count
		skip = 16
	case procReaddirplus: // directory handle, cookie, verifier, dircount, maxcount
		skip = 20
	default:
		return SmallReply
	}
	if len(args) < 4 {
		return MaxIO + replySlack
	}
	fh := int(binary.BigEndian.Uint32(args))
	if fh > nfsv3.NFS3_FHSIZE {
		return SmallReply // BADHANDLE or GARBAGE_ARGS
	}
	at := 4 + (fh+3)&^3 + skip
	if len(args) < at+4 {
		return MaxIO + replySlack
	}
	return int(min(binary.BigEndian.Uint32(args[at:]), MaxIO)) + replySlack
}
