package fsstate

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// MaxRead is the most bytes one Read returns; larger requests get a short
// read (with eof false).
const MaxRead = 16 << 20

// reader is what reads need from a database, a snapshot or a batch.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// view runs fn against a consistent snapshot of the state.
func (s *Store) view(fn func(r reader) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	snap := db.NewSnapshot()
	defer snap.Close()
	return fn(snap)
}

// point runs fn, which reads a single key, against the database itself: one
// Get sees one committed state on its own, so it needs no snapshot (making
// and releasing one costs more than the Get: the release looks for
// compactions it may have held back).
func (s *Store) point(fn func(r reader) error) error {
	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return fn(db)
}

// get returns a copy of key's value; ok is false if it does not exist.
func get(r reader, key []byte) (val []byte, ok bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fsstate: read: %w", err)
	}
	val = append([]byte{}, v...)
	closer.Close()
	return val, true, nil
}

func getInode(r reader, vol, ino uint64) (*inode, error) {
	b, ok, err := get(r, inoKey(vol, ino))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, syscall.ESTALE
	}
	return decodeInode(vol, ino, b)
}

func getDir(r reader, vol, ino uint64) (*inode, error) {
	n, err := getInode(r, vol, ino)
	if err == nil && n.Type != TypeDir {
		err = syscall.ENOTDIR
	}
	return n, err
}

func getVolume(r reader, id uint64) (Volume, error) {
	b, ok, err := get(r, volKey(id))
	if err != nil {
		return Volume{}, err
	}
	if !ok {
		return Volume{}, syscall.ENOENT
	}
	v, err := decodeVolume(b)
	if err != nil {
		return Volume{}, err
	}
	return v.Volume, nil
}

// GetAttr returns an inode's attributes (ESTALE if it does not exist).
func (s *Store) GetAttr(vol, ino uint64) (a Attr, err error) {
	err = s.point(func(r reader) error {
		n, err := getInode(r, vol, ino)
		if err == nil {
			a = n.Attr
		}
		return err
	})
	return a, err
}

// Lookup returns the attributes of the entry name in directory dir: "." is
// the directory itself and ".." its parent (the root's parent is itself).
// Like every read it checks no permission: callers check search permission
// on dir with Access.
func (s *Store) Lookup(vol, dir uint64, name string) (a Attr, err error) {
	err = s.view(func(r reader) error {
		d, err := getDir(r, vol, dir)
		if err != nil {
			return err
		}
		ino := d.Parent
		switch name {
		case ".":
			a = d.Attr
			return nil
		case "..":
		default:
			if err := checkName(name); err != nil {
				return err
			}
			b, ok, err := get(r, dentKey(vol, dir, name))
			if err != nil {
				return err
			}
			if !ok {
				return syscall.ENOENT
			}
			e, err := decodeDent(b)
			if err != nil {
				return err
			}
			ino = e.Ino
		}
		n, err := getInode(r, vol, ino)
		if err == nil {
			a = n.Attr
		}
		return err
	})
	return a, err
}

// Read returns up to n bytes of regular file ino from offset off. Holes read
// as zeros; a read reaching the end of the file returns eof true, with short
// (possibly empty) data. EISDIR for a directory, EINVAL for a symlink.
func (s *Store) Read(vol, ino, off uint64, n uint32) (data []byte, eof bool, err error) {
	var buf []byte
	got, eof, err := s.read(vol, ino, off, n, func(size int) []byte {
		buf = make([]byte, size)
		return buf
	})
	if err != nil {
		return nil, false, err
	}
	return buf[:got], eof, nil
}

// ReadInto is Read into buf (up to len(buf) bytes), which need not be
// zeroed: it returns how many bytes of buf hold the file's data.
func (s *Store) ReadInto(vol, ino, off uint64, buf []byte) (n int, eof bool, err error) {
	return s.read(vol, ino, off, uint32(min(len(buf), MaxRead)), func(size int) []byte { return buf[:size] })
}

// read reads up to n bytes at off into the buffer alloc returns for the
// size that the file holds there.
func (s *Store) read(vol, ino, off uint64, n uint32, alloc func(size int) []byte) (got int, eof bool, err error) {
	err = s.view(func(r reader) error {
		f, err := getInode(r, vol, ino)
		if err != nil {
			return err
		}
		switch f.Type {
		case TypeRegular:
		case TypeDir:
			return syscall.EISDIR
		default:
			return syscall.EINVAL
		}
		if off >= f.Size {
			alloc(0)
			eof = true
			return nil
		}
		end := off + uint64(min(n, MaxRead))
		if end > f.Size || end < off {
			end = f.Size
		}
		eof = end == f.Size
		data := alloc(int(end - off))
		got = len(data)
		if got == 0 {
			return nil
		}
		return readChunks(r, vol, ino, off, data)
	})
	if err != nil {
		return 0, false, err
	}
	return got, eof, nil
}

// readChunks fills buf with the file data at off; missing chunks and bytes
// past a chunk's stored length read as zeros (buf may hold anything).
func readChunks(r reader, vol, ino, off uint64, buf []byte) error {
	end := off + uint64(len(buf))
	lower := chunkKey(vol, ino, off/ChunkSize)
	upper := chunkKey(vol, ino, (end-1)/ChunkSize+1) // end <= MaxFileSize: no overflow
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("fsstate: read: %w", err)
	}
	pos := off // buf is filled up to pos; chunks come in offset order
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 25 {
			continue
		}
		base := beUint64(k[17:]) * ChunkSize
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("fsstate: read: %w", err)
		}
		lo := max(off, base)
		hi := min(end, base+uint64(len(v)))
		if hi > lo {
			clear(buf[pos-off : lo-off]) // a hole before this chunk's data
			copy(buf[lo-off:hi-off], v[lo-base:hi-base])
			pos = hi
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsstate: read: %w", err)
	}
	clear(buf[pos-off:])
	return nil
}

// ReadDir returns up to max entries of directory dir whose cookie is greater
// than after, in cookie order, each with its attributes; eof is true when no
// entry follows the last one returned. Cookies are never reused within a
// directory, so paging while entries come and go neither repeats nor skips
// the entries that stay. max <= 0 means no limit.
func (s *Store) ReadDir(vol, dir, after uint64, max int) (entries []DirEntry, eof bool, err error) {
	err = s.view(func(r reader) error {
		entries, eof = nil, false
		if _, err := getDir(r, vol, dir); err != nil {
			return err
		}
		prefix := cookieKey(vol, dir, 0)[:17]
		upper := prefixEnd(prefix)
		if after == ^uint64(0) {
			eof = true
			return nil
		}
		it, err := r.NewIter(&pebble.IterOptions{
			LowerBound: cookieKey(vol, dir, after+1), UpperBound: upper,
		})
		if err != nil {
			return fmt.Errorf("fsstate: readdir: %w", err)
		}
		defer it.Close()
		ok := it.First()
		for ; ok && (max <= 0 || len(entries) < max); ok = it.Next() {
			k := it.Key()
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("fsstate: readdir: %w", err)
			}
			e, err := readDirEntry(r, vol, dir, beUint64(k[17:]), string(v))
			if err != nil {
				return err
			}
			entries = append(entries, e)
		}
		eof = !ok
		return it.Error()
	})
	if err != nil {
		return nil, false, err
	}
	return entries, eof, nil
}

func readDirEntry(r reader, vol, dir, cookie uint64, name string) (DirEntry, error) {
	b, ok, err := get(r, dentKey(vol, dir, name))
	if err != nil {
		return DirEntry{}, err
	}
	if !ok {
		return DirEntry{}, fmt.Errorf("%w: cookie %d of directory %d/%d names missing entry %q",
			ErrCorrupt, cookie, vol, dir, name)
	}
	d, err := decodeDent(b)
	if err != nil {
		return DirEntry{}, err
	}
	n, err := getInode(r, vol, d.Ino)
	if err != nil {
		if errors.Is(err, syscall.ESTALE) {
			err = fmt.Errorf("%w: entry %q of directory %d/%d names missing inode %d",
				ErrCorrupt, name, vol, dir, d.Ino)
		}
		return DirEntry{}, err
	}
	return DirEntry{Name: name, Ino: d.Ino, Cookie: cookie, Attr: n.Attr}, nil
}

// Readlink returns a symlink's target (EINVAL if ino is not a symlink).
func (s *Store) Readlink(vol, ino uint64) (target string, err error) {
	err = s.point(func(r reader) error {
		n, err := getInode(r, vol, ino)
		if err != nil {
			return err
		}
		if n.Type != TypeSymlink {
			return syscall.EINVAL
		}
		target = n.Target
		return nil
	})
	return target, err
}

// Volumes returns every volume, by id.
func (s *Store) Volumes() (vols []Volume, err error) {
	err = s.view(func(r reader) error {
		vols = nil
		start := []byte{pVolume}
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: prefixEnd(start)})
		if err != nil {
			return fmt.Errorf("fsstate: list volumes: %w", err)
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("fsstate: list volumes: %w", err)
			}
			rec, err := decodeVolume(v)
			if err != nil {
				return err
			}
			vols = append(vols, rec.Volume)
		}
		return it.Error()
	})
	return vols, err
}

// VolumeByName returns the volume called name (ENOENT if none).
func (s *Store) VolumeByName(name string) (v Volume, err error) {
	err = s.view(func(r reader) error {
		b, ok, err := get(r, nameKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ENOENT
		}
		if len(b) != 8 {
			return fmt.Errorf("%w: volume name index entry of %d bytes", ErrCorrupt, len(b))
		}
		v, err = getVolume(r, beUint64(b))
		return err
	})
	return v, err
}

// VolumeByID returns volume id (ENOENT if none).
func (s *Store) VolumeByID(id uint64) (v Volume, err error) {
	err = s.point(func(r reader) error {
		v, err = getVolume(r, id)
		return err
	})
	return v, err
}

// Access reports what cred may do with the inode under POSIX rules: owner,
// group (primary or supplementary) or other bits; root may read and write
// anything and execute when any x bit is set or it is a directory. A nil cred
// may do everything.
func (s *Store) Access(vol, ino uint64, cred *Cred) (read, write, exec bool, err error) {
	a, err := s.GetAttr(vol, ino)
	if err != nil {
		return false, false, false, err
	}
	if cred == nil {
		return true, true, true, nil
	}
	read, write, exec = access(&a, cred)
	return read, write, exec, nil
}

// CheckWrite reports, from this node's state, whether cred may write n
// bytes at off into regular file ino: the checks the state machine makes
// when it applies the write (type, size limit, permission), made early so
// that a write answered before it is applied (NFS UNSTABLE) fails now, with
// its error, in all but rare races.
func (s *Store) CheckWrite(vol, ino uint64, cred *Cred, off, n uint64) error {
	a, err := s.GetAttr(vol, ino)
	if err != nil {
		return err
	}
	switch a.Type {
	case TypeRegular:
	case TypeDir:
		return syscall.EISDIR
	default:
		return syscall.EINVAL
	}
	if end := off + n; end < off || end > MaxFileSize {
		return syscall.EFBIG
	}
	if cred == nil {
		return nil
	}
	return needWriteData(&inode{Attr: a}, cred)
}
