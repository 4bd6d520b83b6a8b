package fsstate

import (
	"bytes"
	"errors"
	"slices"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// txn is the write set of one command on top of the batch being built for
// an ApplyBatch call. Reads see the command's own writes, then the batch
// (earlier commands), then the database. Nothing reaches the batch until
// commit, so a command that fails is discarded whole.
//
// Inode and volume records are cached as objects: the same inode fetched
// twice is the same *inode, so an operation touching one directory in two
// roles (rename within a directory) cannot lose an update.
type txn struct {
	b      *pebble.Batch
	cmd    *Command
	points map[string]pending
	ranges []keyRange
	inodes map[[2]uint64]*cachedInode
	vols   map[uint64]*cachedVolume

	// drops are the volume snapshot directories the command deletes; they
	// move to done when it commits and are removed once the batch is
	// (volsnap.go).
	drops []snapID
	done  []snapID

	// replied is what replay read under the command's reply key (nil
	// key: nothing yet), for recordReply, which replaces that record.
	replied struct {
		key, val []byte
		ok       bool
	}
}

type pending struct {
	val []byte
	del bool
}

type keyRange struct{ start, end []byte }

type cachedInode struct {
	n       *inode // nil: does not exist
	dirty   bool
	deleted bool
}

type cachedVolume struct {
	v       *volume
	dirty   bool
	deleted bool
}

func newTxn(b *pebble.Batch) *txn {
	return &txn{
		b:      b,
		points: make(map[string]pending),
		inodes: make(map[[2]uint64]*cachedInode),
		vols:   make(map[uint64]*cachedVolume),
	}
}

// reset discards the write set and starts command c.
func (t *txn) reset(c *Command) {
	t.cmd = c
	clear(t.points)
	clear(t.inodes)
	clear(t.vols)
	t.ranges = t.ranges[:0]
	t.drops = t.drops[:0]
	t.replied.key, t.replied.val, t.replied.ok = nil, nil, false
}

// get returns a copy of key's value; ok is false if it does not exist.
func (t *txn) get(key []byte) (val []byte, ok bool, err error) {
	if p, found := t.points[string(key)]; found {
		if p.del {
			return nil, false, nil
		}
		return p.val, true, nil
	}
	for _, r := range t.ranges {
		if bytes.Compare(key, r.start) >= 0 && bytes.Compare(key, r.end) < 0 {
			return nil, false, nil
		}
	}
	v, closer, err := t.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, storageErr("get", err)
	}
	val = slices.Clone(v)
	if val == nil {
		val = []byte{}
	}
	closer.Close()
	return val, true, nil
}

func (t *txn) set(key, val []byte) { t.points[string(key)] = pending{val: val} }

func (t *txn) del(key []byte) { t.points[string(key)] = pending{del: true} }

// delRange deletes [start, end). Point writes made earlier in the command
// inside the range are dropped; later ones override it.
func (t *txn) delRange(start, end []byte) {
	for k := range t.points {
		if k >= string(start) && k < string(end) {
			delete(t.points, k)
		}
	}
	t.ranges = append(t.ranges, keyRange{slices.Clone(start), slices.Clone(end)})
}

// commit writes the command's changes into the batch, in a deterministic
// order: range deletions first, then point writes by key.
func (t *txn) commit() error {
	for key, c := range t.inodes {
		k := inoKey(key[0], key[1])
		switch {
		case c.deleted:
			t.del(k)
		case c.dirty:
			t.set(k, c.n.encode())
		}
	}
	for id, c := range t.vols {
		switch {
		case c.deleted:
			t.del(volKey(id))
		case c.dirty:
			t.set(volKey(id), c.v.encode())
		}
	}
	for _, r := range t.ranges {
		if err := t.b.DeleteRange(r.start, r.end, nil); err != nil {
			return storageErr("delete range", err)
		}
	}
	keys := make([]string, 0, len(t.points))
	for k := range t.points {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := t.points[k]
		var err error
		if p.del {
			err = t.b.Delete([]byte(k), nil)
		} else {
			err = t.b.Set([]byte(k), p.val, nil)
		}
		if err != nil {
			return storageErr("write", err)
		}
	}
	t.done = append(t.done, t.drops...)
	t.reset(nil)
	return nil
}

// volume returns volume id's record, or ESTALE if there is none.
func (t *txn) volume(id uint64) (*volume, error) {
	if c, ok := t.vols[id]; ok {
		if c.v == nil || c.deleted {
			return nil, syscall.ESTALE
		}
		return c.v, nil
	}
	b, ok, err := t.get(volKey(id))
	if err != nil {
		return nil, err
	}
	c := &cachedVolume{}
	if ok {
		if c.v, err = decodeVolume(b); err != nil {
			return nil, err
		}
	}
	t.vols[id] = c
	if c.v == nil {
		return nil, syscall.ESTALE
	}
	return c.v, nil
}

// volumeByName returns the volume named name, or ENOENT.
func (t *txn) volumeByName(name string) (*volume, error) {
	b, ok, err := t.get(nameKey(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, syscall.ENOENT
	}
	if len(b) != 8 {
		return nil, ErrCorrupt
	}
	v, err := t.volume(beUint64(b))
	if errors.Is(err, syscall.ESTALE) {
		return nil, ErrCorrupt // the name index points at a missing volume
	}
	return v, err
}

func (t *txn) putVolume(v *volume) {
	t.vols[v.ID] = &cachedVolume{v: v, dirty: true}
}

func (t *txn) deleteVolume(v *volume) {
	t.vols[v.ID] = &cachedVolume{v: v, deleted: true}
}

// inode returns the inode, or ESTALE if it does not exist.
func (t *txn) inode(vol, ino uint64) (*inode, error) {
	key := [2]uint64{vol, ino}
	if c, ok := t.inodes[key]; ok {
		if c.n == nil || c.deleted {
			return nil, syscall.ESTALE
		}
		return c.n, nil
	}
	b, ok, err := t.get(inoKey(vol, ino))
	if err != nil {
		return nil, err
	}
	c := &cachedInode{}
	if ok {
		if c.n, err = decodeInode(vol, ino, b); err != nil {
			return nil, err
		}
	}
	t.inodes[key] = c
	if c.n == nil {
		return nil, syscall.ESTALE
	}
	return c.n, nil
}

// dir returns the directory inode, ESTALE if missing or ENOTDIR.
func (t *txn) dir(vol, ino uint64) (*inode, error) {
	n, err := t.inode(vol, ino)
	if err != nil {
		return nil, err
	}
	if n.Type != TypeDir {
		return nil, syscall.ENOTDIR
	}
	return n, nil
}

// dirty marks inodes as changed; they are written at commit.
func (t *txn) dirty(ns ...*inode) {
	for _, n := range ns {
		t.inodes[[2]uint64{n.Vol, n.Ino}] = &cachedInode{n: n, dirty: true}
	}
}

// freeInode deletes the inode record and all its data chunks, and takes it
// off its volume's usage.
// maxPointChunkDeletes is the largest file, in chunks (16 MiB), whose data
// freeInode deletes key by key rather than with a range deletion.
const maxPointChunkDeletes = 256

func (t *txn) freeInode(v *volume, n *inode) {
	t.inodes[[2]uint64{n.Vol, n.Ino}] = &cachedInode{n: n, deleted: true}
	if n.Type == TypeRegular && n.Used > 0 {
		// Small files drop their few chunks one by one: a range deletion per
		// removed file piles up range tombstones that every later read walks.
		if chunks := (n.Size + ChunkSize - 1) / ChunkSize; chunks <= maxPointChunkDeletes {
			for i := uint64(0); i < chunks; i++ {
				t.del(chunkKey(n.Vol, n.Ino, i))
			}
		} else {
			start := chunkKey(n.Vol, n.Ino, 0)
			t.delRange(start, prefixEnd(start[:17]))
		}
		v.Used -= n.Used
	}
	v.Inodes--
	t.putVolume(v)
}

// lookup returns the entry name in directory dir.
func (t *txn) lookup(vol, dir uint64, name string) (dent, bool, error) {
	b, ok, err := t.get(dentKey(vol, dir, name))
	if err != nil || !ok {
		return dent{}, false, err
	}
	d, err := decodeDent(b)
	return d, err == nil, err
}

// addEntry links name → ino in directory d with a fresh cookie.
func (t *txn) addEntry(d *inode, name string, ino uint64) {
	cookie := d.NextCookie
	d.NextCookie++
	t.set(dentKey(d.Vol, d.Ino, name), dent{Ino: ino, Cookie: cookie}.encode())
	t.set(cookieKey(d.Vol, d.Ino, cookie), []byte(name))
	d.setEntries(d.Entries + 1)
	t.dirty(d)
}

// removeEntry unlinks name (whose entry is e) from directory d.
func (t *txn) removeEntry(d *inode, name string, e dent) {
	t.del(dentKey(d.Vol, d.Ino, name))
	t.del(cookieKey(d.Vol, d.Ino, e.Cookie))
	d.setEntries(d.Entries - 1)
	t.dirty(d)
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
