// Package fh makes and checks NFS file handles. A handle is built only from
// replicated state — volume id, inode number and generation — plus a MAC
// under the cluster's secret, so it is identical on every node and across
// restarts, a handle for a removed inode gives STALE (its generation no
// longer matches), and a forged or altered one is detected (BADHANDLE).
//
//	version 1 | volume:8 | inode:8 | generation:8 | mac:16              (41 bytes)
//	version 2 | volume:8 | inode:8 | generation:8 | snapshot:8 | mac:16 (49 bytes)
//
// Version 2 names an inode in a volume snapshot (read-only), by the raft
// index at which the snapshot was taken.
package fh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// Handle format versions.
const (
	Version         = 1
	VersionSnapshot = 2
)

// Size is the length of a handle of the live volume; SnapshotSize of one in
// a snapshot.
const (
	Size         = 1 + 8 + 8 + 8 + 16
	SnapshotSize = Size + 8
)

// ErrBadHandle is returned for a handle that was not made by this cluster,
// was altered, or has an unknown format.
var ErrBadHandle = errors.New("fh: bad file handle")

// Handle identifies an inode.
type Handle struct {
	Vol  uint64
	Ino  uint64
	Gen  uint64
	Snap uint64 // 0: the live volume; else the snapshot taken at this raft index
}

// Codec makes and checks handles under one secret. It is safe for
// concurrent use.
type Codec struct {
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 under key (every NFS call checks a handle or two)
}

// NewCodec returns a codec keyed by the cluster's secret.
func NewCodec(secret []byte) *Codec {
	k := sha256.Sum256(append([]byte("keel file handle v1\x00"), secret...))
	c := &Codec{key: k[:]}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key) }
	return c
}

func (c *Codec) mac(b []byte) []byte {
	m := c.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:16]
	c.macs.Put(m)
	return sum
}

// Encode returns the wire form of h.
func (c *Codec) Encode(h Handle) []byte {
	b := make([]byte, 0, SnapshotSize)
	if h.Snap == 0 {
		b = append(b, Version)
	} else {
		b = append(b, VersionSnapshot)
	}
	b = binary.BigEndian.AppendUint64(b, h.Vol)
	b = binary.BigEndian.AppendUint64(b, h.Ino)
	b = binary.BigEndian.AppendUint64(b, h.Gen)
	if h.Snap != 0 {
		b = binary.BigEndian.AppendUint64(b, h.Snap)
	}
	return append(b, c.mac(b)...)
}

// Decode checks and parses a handle.
func (c *Codec) Decode(b []byte) (Handle, error) {
	n := len(b)
	switch {
	case n == Size && b[0] == Version, n == SnapshotSize && b[0] == VersionSnapshot:
	default:
		return Handle{}, ErrBadHandle
	}
	if !hmac.Equal(c.mac(b[:n-16]), b[n-16:]) {
		return Handle{}, ErrBadHandle
	}
	h := Handle{
		Vol: binary.BigEndian.Uint64(b[1:]),
		Ino: binary.BigEndian.Uint64(b[9:]),
		Gen: binary.BigEndian.Uint64(b[17:]),
	}
	if b[0] == VersionSnapshot {
		h.Snap = binary.BigEndian.Uint64(b[25:])
		if h.Snap == 0 {
			return Handle{}, ErrBadHandle
		}
	}
	return h, nil
}
