package faultfs

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"syscall"
)

const pageSize = 4096

// overlay is the unsynced state of one backing inode. Its methods take the
// backing file descriptor to read clean data from and, in flush, to write to.
type overlay struct {
	mu    sync.Mutex
	dirty bool             // false: the backing file is the whole truth
	size  int64            // logical size, when dirty
	floor int64            // backing bytes at >= floor read as zeros, when dirty
	pages map[int64][]byte // page index -> pageSize bytes, when dirty
}

func fstatSize(fd int) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// begin makes o dirty, taking its size from the backing file. Caller holds o.mu.
func (o *overlay) begin(fd int) error {
	if o.dirty {
		return nil
	}
	sz, err := fstatSize(fd)
	if err != nil {
		return err
	}
	o.dirty, o.size, o.floor, o.pages = true, sz, math.MaxInt64, map[int64][]byte{}
	return nil
}

// readBacking reads clean bytes at off into buf, zero past the backing EOF and
// past the floor. Caller holds o.mu.
func (o *overlay) readBacking(fd int, buf []byte, off int64) error {
	clear(buf)
	limit := int64(len(buf))
	if o.dirty && o.floor < off+limit {
		limit = max(0, o.floor-off)
	}
	for done := int64(0); done < limit; {
		n, err := syscall.Pread(fd, buf[done:limit], off+done)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		done += int64(n)
	}
	return nil
}

// logicalSize is the size readers see. Caller holds o.mu.
func (o *overlay) logicalSize(fd int) (int64, error) {
	if o.dirty {
		return o.size, nil
	}
	return fstatSize(fd)
}

// read fills buf from off, clipped to the logical size; it returns the bytes read.
func (o *overlay) read(fd int, buf []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	size, err := o.logicalSize(fd)
	if err != nil {
		return 0, err
	}
	if off >= size {
		return 0, nil
	}
	buf = buf[:min(int64(len(buf)), size-off)]
	if err := o.readBacking(fd, buf, off); err != nil {
		return 0, err
	}
	if !o.dirty {
		return len(buf), nil
	}
	end := off + int64(len(buf))
	for idx := off / pageSize; idx*pageSize < end; idx++ {
		p, ok := o.pages[idx]
		if !ok {
			continue
		}
		ps := idx * pageSize
		from, to := max(ps, off), min(ps+pageSize, end)
		copy(buf[from-off:to-off], p[from-ps:to-ps])
	}
	return len(buf), nil
}

// write puts data at off into the overlay; it returns how many bytes became
// newly dirty (for accounting).
func (o *overlay) write(fd int, data []byte, off int64) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.begin(fd); err != nil {
		return 0, err
	}
	var added int64
	end := off + int64(len(data))
	for idx := off / pageSize; idx*pageSize < end; idx++ {
		ps := idx * pageSize
		p, ok := o.pages[idx]
		if !ok {
			p = make([]byte, pageSize)
			if ps < o.size {
				if err := o.readBacking(fd, p, ps); err != nil {
					return added, err
				}
				if keep := o.size - ps; keep < pageSize {
					clear(p[keep:])
				}
			}
			o.pages[idx] = p
			added += pageSize
		}
		from, to := max(ps, off), min(ps+pageSize, end)
		copy(p[from-ps:to-ps], data[from-off:to-off])
	}
	o.size = max(o.size, end)
	return added, nil
}

// truncate sets the logical size; it returns the change in dirty bytes.
func (o *overlay) truncate(fd int, size int64) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.begin(fd); err != nil {
		return 0, err
	}
	var delta int64
	if size < o.size {
		o.floor = min(o.floor, size)
		for idx, p := range o.pages {
			ps := idx * pageSize
			switch {
			case ps >= size:
				delete(o.pages, idx)
				delta -= pageSize
			case ps+pageSize > size:
				clear(p[size-ps:])
			}
		}
	}
	o.size = size
	return delta, nil
}

// flush applies the overlay to the backing file and fsyncs it (fdatasync when
// dataOnly). It returns the dirty bytes released. On error the overlay stays.
func (o *overlay) flush(fd int, dataOnly bool) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var released int64
	if o.dirty {
		backing, err := fstatSize(fd)
		if err != nil {
			return 0, err
		}
		if o.floor < backing {
			if err := syscall.Ftruncate(fd, o.floor); err != nil {
				return 0, fmt.Errorf("truncate backing file to %d: %w", o.floor, err)
			}
		}
		idxs := make([]int64, 0, len(o.pages))
		for idx := range o.pages {
			idxs = append(idxs, idx)
		}
		sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
		for _, idx := range idxs {
			ps := idx * pageSize
			n := min(int64(pageSize), o.size-ps)
			if n <= 0 {
				continue
			}
			if err := pwriteAll(fd, o.pages[idx][:n], ps); err != nil {
				return 0, fmt.Errorf("write back page at %d: %w", ps, err)
			}
		}
		if err := syscall.Ftruncate(fd, o.size); err != nil {
			return 0, fmt.Errorf("set backing size %d: %w", o.size, err)
		}
		released = int64(len(o.pages)) * pageSize
	}
	var err error
	if dataOnly {
		err = syscall.Fdatasync(fd)
	} else {
		err = syscall.Fsync(fd)
	}
	if err != nil {
		return 0, err
	}
	o.dirty, o.pages = false, nil
	return released, nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := syscall.Pwrite(fd, b, off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
