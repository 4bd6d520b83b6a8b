package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"

	"keel/internal/fsapi"
	"keel/internal/fsapi/fsapitest"
	"keel/internal/fsstate"
)

// memStore is the in-memory Store of the unit tests.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	puts map[string]int // key → times written
	// failAfter, when > 0, makes the Put of chunk number failAfter fail.
	failAfter int
	chunkPuts int
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}, puts: map[string]int{}} }

func (m *memStore) String() string { return "mem://test" }

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("mem: put %s: %d bytes, expected %d", key, len(b), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.HasPrefix(key, chunkPrefix) {
		m.chunkPuts++
		if m.failAfter > 0 && m.chunkPuts >= m.failAfter {
			return fmt.Errorf("mem: injected failure at chunk %d", m.chunkPuts)
		}
	}
	m.objs[key] = b
	m.puts[key]++
	return nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("mem: get %s: %w", key, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(append([]byte{}, b...))), nil
}

func (m *memStore) Stat(ctx context.Context, key string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	return int64(len(b)), ok, nil
}

func (m *memStore) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *memStore) keys(prefix string) []string {
	k, _ := m.List(context.Background(), prefix)
	return k
}

func newFS(t *testing.T) *fsapi.FS {
	t.Helper()
	st, err := fsstate.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return fsapi.New(fsapitest.New(st))
}

// builder makes a tree in a volume by path.
type builder struct {
	t   *testing.T
	fs  *fsapi.FS
	vol uint64
}

func newVolume(t *testing.T, f *fsapi.FS, name string) *builder {
	t.Helper()
	v, err := f.CreateVolume(context.Background(), name, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return &builder{t, f, v.ID}
}

func (b *builder) lookup(path string) fsstate.Attr {
	b.t.Helper()
	st, _ := b.fs.Local()
	a, err := st.GetAttr(b.vol, fsstate.RootIno)
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		if c == "" || err != nil {
			continue
		}
		a, err = st.Lookup(b.vol, a.Ino, c)
	}
	if err != nil {
		b.t.Fatalf("lookup %s: %v", path, err)
	}
	return a
}

func splitTest(path string) (string, string) {
	i := strings.LastIndex(path, "/")
	return path[:max(i, 1)], path[i+1:]
}

func (b *builder) create(path string, typ fsstate.FileType, mode uint32, target string) uint64 {
	b.t.Helper()
	dir, name := splitTest(path)
	res, err := b.fs.Create(context.Background(), nil, fsapi.CreateArgs{Vol: b.vol, Dir: b.lookup(dir).Ino, Name: name,
		Type: typ, Mode: mode, UID: 1000, GID: 100, Target: target, CreateMode: fsstate.CreateGuarded})
	if err != nil {
		b.t.Fatalf("create %s: %v", path, err)
	}
	return res.Attr.Ino
}

func (b *builder) mkdir(path string) uint64 { return b.create(path, fsstate.TypeDir, 0o755, "") }

func (b *builder) write(path string, off uint64, data []byte) {
	b.t.Helper()
	if _, err := b.fs.Write(context.Background(), nil, b.vol, b.lookup(path).Ino, off, data); err != nil {
		b.t.Fatalf("write %s: %v", path, err)
	}
}

func (b *builder) file(path string, data []byte) uint64 {
	b.t.Helper()
	ino := b.create(path, fsstate.TypeRegular, 0o644, "")
	if len(data) > 0 {
		b.write(path, 0, data)
	}
	return ino
}

func (b *builder) setAttr(path string, s fsstate.SetAttr) {
	b.t.Helper()
	if _, err := b.fs.SetAttr(context.Background(), nil, b.vol, b.lookup(path).Ino, s, nil); err != nil {
		b.t.Fatalf("setattr %s: %v", path, err)
	}
}

func (b *builder) link(target, path string) {
	b.t.Helper()
	dir, name := splitTest(path)
	if _, err := b.fs.Link(context.Background(), nil, b.vol, b.lookup(target).Ino, b.lookup(dir).Ino, name); err != nil {
		b.t.Fatalf("link %s: %v", path, err)
	}
}

// pattern returns n bytes that differ from those of other seeds.
func pattern(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", seed, i)))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// treeEntry is what the comparison looks at for one path.
type treeEntry struct {
	Type         fsstate.FileType
	Mode         uint32
	UID, GID     uint32
	Size         uint64
	Atime, Mtime fsstate.Time
	Target       string
	Sum          string
	Links        string // every path of the same inode, sorted
}

// tree reads a volume's whole tree by path.
func tree(t *testing.T, f *fsapi.FS, volume string) map[string]treeEntry {
	t.Helper()
	st, _ := f.Local()
	v, err := st.VolumeByName(volume)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]treeEntry{}
	byIno := map[uint64][]string{}
	var walk func(dir uint64, path string)
	walk = func(dir uint64, path string) {
		ents, _, err := st.ReadDir(v.ID, dir, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := path + "/" + e.Name
			a := e.Attr
			te := treeEntry{Type: a.Type, Mode: a.Mode, UID: a.UID, GID: a.GID, Size: a.Size, Atime: a.Atime, Mtime: a.Mtime}
			switch a.Type {
			case fsstate.TypeDir:
				te.Size = 0
				walk(e.Ino, p)
			case fsstate.TypeSymlink:
				te.Target, _ = st.Readlink(v.ID, e.Ino)
			default:
				data, _, err := st.Read(v.ID, e.Ino, 0, uint32(a.Size))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data)
				te.Sum = hex.EncodeToString(sum[:])
			}
			out[p] = te
			byIno[e.Ino] = append(byIno[e.Ino], p)
		}
	}
	walk(fsstate.RootIno, "")
	root, _ := st.GetAttr(v.ID, fsstate.RootIno)
	out["/"] = treeEntry{Type: root.Type, Mode: root.Mode, UID: root.UID, GID: root.GID, Atime: root.Atime, Mtime: root.Mtime}
	for _, paths := range byIno {
		sort.Strings(paths)
		for _, p := range paths {
			e := out[p]
			e.Links = strings.Join(paths, " ")
			out[p] = e
		}
	}
	return out
}

func compareTrees(t *testing.T, want, got map[string]treeEntry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%q: missing from the restored tree", p)
			continue
		}
		if g != w {
			t.Errorf("%q differs:\n got  %+v\n want %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%q: in the restored tree only", p)
		}
	}
}
