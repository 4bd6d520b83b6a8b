// Package fh makes and checks NFS file handles. A handle is built only from
// replicated state — volume id, inode number and generation — plus a MAC
// under the cluster's secret, so it is identical on every node and across
// restarts, a handle for a removed inode gives STALE (its generation no
// longer matches), and a forged or altered one is detected (BADHANDLE).
//
//	version:1 | volume:8 | inode:8 | generation:8 | mac:16   (41 bytes)
package fh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Version is the handle format version.
const Version = 1

// Size is the length of a handle.
const Size = 1 + 8 + 8 + 8 + 16

// ErrBadHandle is returned for a handle that was not made by this cluster,
// was altered, or has an unknown format.
var ErrBadHandle = errors.New("fh: bad file handle")

// Handle identifies an inode.
type Handle struct {
	Vol uint64
	Ino uint64
	Gen uint64
}

// Codec makes and checks handles under one secret.
type Codec struct{ key []byte }

// NewCodec returns a codec keyed by the cluster's secret.
func NewCodec(secret []byte) *Codec {
	k := sha256.Sum256(append([]byte("keel file handle v1\x00"), secret...))
	return &Codec{key: k[:]}
}

func (c *Codec) mac(b []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(b)
	return m.Sum(nil)[:16]
}

// Encode returns the wire form of h.
func (c *Codec) Encode(h Handle) []byte {
	b := make([]byte, 0, Size)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint64(b, h.Vol)
	b = binary.BigEndian.AppendUint64(b, h.Ino)
	b = binary.BigEndian.AppendUint64(b, h.Gen)
	return append(b, c.mac(b)...)
}

// Decode checks and parses a handle.
func (c *Codec) Decode(b []byte) (Handle, error) {
	if len(b) != Size || b[0] != Version {
		return Handle{}, ErrBadHandle
	}
	if !hmac.Equal(c.mac(b[:Size-16]), b[Size-16:]) {
		return Handle{}, ErrBadHandle
	}
	return Handle{
		Vol: binary.BigEndian.Uint64(b[1:]),
		Ino: binary.BigEndian.Uint64(b[9:]),
		Gen: binary.BigEndian.Uint64(b[17:]),
	}, nil
}
