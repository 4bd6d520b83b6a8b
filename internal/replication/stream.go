package replication

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// The snapshot stream: a checkpoint directory (with its subdirectories:
// volume snapshots live under volsnaps/) sent file by file. Its length is
// known before it is sent, as raft requires:
//
//	"KEELSNP2" kind:u8 idlen:u16 id
//	{ 'F' namelen:u16 name size:u64 data crc32c(data):u32
//	| 'L' namelen:u16 name targetlen:u16 target }*
//	'E'
//
// Names are slash-separated paths relative to the directory. An 'L' record
// makes name a hard link to the earlier file target: Pebble checkpoints
// share files by hard links, and the stream sends each file's bytes once.
// kind is 'D' for a data node's state and 'W' for a witness's (which holds
// no state); a data node refuses to restore a 'W' stream, so a witness that
// briefly leads can never wipe a data node.
const (
	snapMagic   = "KEELSNP2"
	kindData    = 'D'
	kindWitness = 'W'

	recFile = 'F'
	recLink = 'L'
	recEnd  = 'E'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// streamEntry is one record of a planned stream.
type streamEntry struct {
	name   string // relative, slash-separated
	size   int64
	linkTo string // non-empty: a hard link to this earlier name
}

// streamPlan lists the files under a checkpoint directory, in a stable
// order, and the exact length of the stream writeStream makes of them.
func streamPlan(dir, id string) ([]streamEntry, int64, error) {
	type fileID struct{ dev, ino uint64 }
	seen := map[fileID]string{}
	var plan []streamEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipAll
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := streamEntry{name: filepath.ToSlash(rel), size: fi.Size()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := fileID{uint64(st.Dev), st.Ino}
			if first, dup := seen[k]; dup {
				e.linkTo = first
			} else {
				seen[k] = e.name
			}
		}
		plan = append(plan, e)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replication: snapshot files: %w", err)
	}
	// WalkDir is lexical; keep links after their targets whatever the names.
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].linkTo == "" && plan[j].linkTo != "" })
	size := int64(len(snapMagic) + 1 + 2 + len(id))
	for _, e := range plan {
		if e.linkTo != "" {
			size += int64(1 + 2 + len(e.name) + 2 + len(e.linkTo))
		} else {
			size += int64(1+2+len(e.name)+8+4) + e.size
		}
	}
	return plan, size + 1, nil
}

func writeStream(w io.Writer, kind byte, id, dir string, plan []streamEntry) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	hdr := append([]byte(snapMagic), kind)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(id)))
	if _, err := bw.Write(append(hdr, id...)); err != nil {
		return err
	}
	for _, e := range plan {
		if e.linkTo != "" {
			h := append([]byte{recLink}, binary.BigEndian.AppendUint16(nil, uint16(len(e.name)))...)
			h = append(h, e.name...)
			h = binary.BigEndian.AppendUint16(h, uint16(len(e.linkTo)))
			if _, err := bw.Write(append(h, e.linkTo...)); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(e.name)))
		if err != nil {
			return fmt.Errorf("replication: snapshot file: %w", err)
		}
		h := append([]byte{recFile}, binary.BigEndian.AppendUint16(nil, uint16(len(e.name)))...)
		h = append(h, e.name...)
		h = binary.BigEndian.AppendUint64(h, uint64(e.size))
		if _, err := bw.Write(h); err != nil {
			f.Close()
			return err
		}
		crc := crc32.New(castagnoli)
		n, err := io.Copy(io.MultiWriter(bw, crc), io.LimitReader(f, e.size))
		f.Close()
		if err != nil {
			return err
		}
		if n != e.size {
			return fmt.Errorf("replication: snapshot file %s changed size while streaming", e.name)
		}
		if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32())); err != nil {
			return err
		}
	}
	if err := bw.WriteByte(recEnd); err != nil {
		return err
	}
	return bw.Flush()
}

// readStreamHeader reads the magic, kind and id of a stream.
func readStreamHeader(r io.Reader) (kind byte, id string, err error) {
	var h [len(snapMagic) + 3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, "", fmt.Errorf("%w: header: %v", errBadSnapshot, err)
	}
	if string(h[:len(snapMagic)]) != snapMagic {
		return 0, "", fmt.Errorf("%w: bad magic", errBadSnapshot)
	}
	kind = h[len(snapMagic)]
	idb := make([]byte, binary.BigEndian.Uint16(h[len(snapMagic)+1:]))
	if _, err := io.ReadFull(r, idb); err != nil {
		return 0, "", fmt.Errorf("%w: id: %v", errBadSnapshot, err)
	}
	return kind, string(idb), nil
}

// safeName checks a relative path from a stream: no absolute paths, no
// "..", nothing that would land outside the directory.
func safeName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || path.Clean(name) != name ||
		name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("%w: bad file name %q", errBadSnapshot, name)
	}
	return nil
}

func readName(r io.Reader) (string, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	name := make([]byte, binary.BigEndian.Uint16(b[:]))
	if _, err := io.ReadFull(r, name); err != nil {
		return "", fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	return string(name), safeName(string(name))
}

// readStreamFiles reads the records of a stream after its header into dir
// (or discards them when dir is empty), checking every checksum.
func readStreamFiles(r io.Reader, dir string) error {
	var t [1]byte
	for {
		if _, err := io.ReadFull(r, t[:]); err != nil {
			return fmt.Errorf("%w: %v", errBadSnapshot, err)
		}
		switch t[0] {
		case recEnd:
			return nil
		case recLink:
			name, err := readName(r)
			if err != nil {
				return err
			}
			target, err := readName(r)
			if err != nil {
				return err
			}
			if dir == "" {
				continue
			}
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(target)), p); err != nil {
				return fmt.Errorf("%w: link %s: %v", errBadSnapshot, name, err)
			}
		case recFile:
			name, err := readName(r)
			if err != nil {
				return err
			}
			if err := readFileRecord(r, dir, name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: unknown record %q", errBadSnapshot, t[0])
		}
	}
}

func readFileRecord(r io.Reader, dir, name string) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	size := int64(binary.BigEndian.Uint64(b[:]))
	if size < 0 {
		return fmt.Errorf("%w: file %s: bad size", errBadSnapshot, name)
	}
	var w io.Writer = io.Discard
	var f *os.File
	if dir != "" {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		var err error
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return fmt.Errorf("replication: snapshot file: %w", err)
		}
		w = f
	}
	crc := crc32.New(castagnoli)
	_, err := io.CopyN(io.MultiWriter(w, crc), r, size)
	if err == nil && f != nil {
		err = f.Sync()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("%w: file %s: %v", errBadSnapshot, name, err)
	}
	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return fmt.Errorf("%w: %v", errBadSnapshot, err)
	}
	if binary.BigEndian.Uint32(b[:4]) != crc.Sum32() {
		return fmt.Errorf("%w: file %s: checksum mismatch", errBadSnapshot, name)
	}
	return nil
}
