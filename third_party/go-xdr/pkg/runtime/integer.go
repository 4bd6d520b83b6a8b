package runtime

import (
	"encoding/binary"
	"io"
)

// appender is implemented by writers that expose their spare capacity
// (bytes.Buffer, bufio.Writer, keel's RPC results): an integer appended
// there and written back is encoded without an allocation. Through a plain
// io.Writer the bytes of each integer escape to the heap (keel: a fifth of
// an NFS call's allocations).
type appender interface {
	AvailableBuffer() []byte
}

// read4 returns the next 4 bytes of r: a slice of a Slicer's memory, or a
// copy.
func read4(r io.Reader) ([]byte, int64, error) {
	if s, ok := r.(Slicer); ok {
		if b, ok := s.NextSlice(4); ok {
			return b, 4, nil
		}
	}
	b := make([]byte, 4)
	n, err := io.ReadFull(r, b)
	return b, int64(n), err
}

func read8(r io.Reader) ([]byte, int64, error) {
	if s, ok := r.(Slicer); ok {
		if b, ok := s.NextSlice(8); ok {
			return b, 8, nil
		}
	}
	b := make([]byte, 8)
	n, err := io.ReadFull(r, b)
	return b, int64(n), err
}

func write4(w io.Writer, v uint32) (int64, error) {
	if a, ok := w.(appender); ok {
		n, err := w.Write(binary.BigEndian.AppendUint32(a.AvailableBuffer(), v))
		return int64(n), err
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	n, err := w.Write(b[:])
	return int64(n), err
}

func write8(w io.Writer, v uint64) (int64, error) {
	if a, ok := w.(appender); ok {
		n, err := w.Write(binary.BigEndian.AppendUint64(a.AvailableBuffer(), v))
		return int64(n), err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	n, err := w.Write(b[:])
	return int64(n), err
}

// ReadInt reads an XDR encoded 32-bit signed integer value.
func ReadInt(r io.Reader) (int32, int64, error) {
	b, n, err := read4(r)
	return int32(binary.BigEndian.Uint32(b)), n, err
}

// WriteInt writes an XDR encoded 32-bit signed integer value.
func WriteInt(w io.Writer, i int32) (int64, error) {
	return write4(w, uint32(i))
}

// ReadUnsignedInt reads an XDR encoded 32-bit unsigned integer value.
func ReadUnsignedInt(r io.Reader) (uint32, int64, error) {
	b, n, err := read4(r)
	return binary.BigEndian.Uint32(b), n, err
}

// WriteUnsignedInt writes an XDR encoded 32-bit unsigned integer value.
func WriteUnsignedInt(w io.Writer, i uint32) (int64, error) {
	return write4(w, i)
}

// ReadHyper reads an XDR encoded 64-bit signed integer value.
func ReadHyper(r io.Reader) (int64, int64, error) {
	b, n, err := read8(r)
	return int64(binary.BigEndian.Uint64(b)), n, err
}

// WriteHyper writes an XDR encoded 64-bit signed integer value.
func WriteHyper(w io.Writer, i int64) (int64, error) {
	return write8(w, uint64(i))
}

// ReadUnsignedHyper reads an XDR encoded 64-bit unsigned integer value.
func ReadUnsignedHyper(r io.Reader) (uint64, int64, error) {
	b, n, err := read8(r)
	return binary.BigEndian.Uint64(b), n, err
}

// WriteUnsignedHyper writes an XDR encoded 64-bit unsigned integer value.
func WriteUnsignedHyper(w io.Writer, i uint64) (int64, error) {
	return write8(w, i)
}
