package backup

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"keel/internal/fsstate"
)

// dirTree is a Tree over a directory of the local filesystem, read once
// when it is made: how a node's state image (a Pebble checkpoint: regular
// files, subdirectories, hard links between them) is pushed by the same
// code that pushes a volume. It is only for directories nothing writes
// while they are read, such as a pinned raft snapshot.
type dirTree struct {
	root  string
	nodes map[uint64]*dirNode // by ino; the root is fsstate.RootIno
}

type dirNode struct {
	attr    fsstate.Attr
	path    string // on disk (the first link's, for hard-linked files)
	entries []fsstate.DirEntry
}

// newDirTree reads the tree under root. Only directories and regular files
// are allowed; files with several links under root share one inode.
func newDirTree(root string) (*dirTree, error) {
	t := &dirTree{root: root, nodes: map[uint64]*dirNode{}}
	type devIno struct{ dev, ino uint64 }
	links := map[devIno]uint64{}
	next := fsstate.RootIno + 1
	var walk func(dir string, ino uint64) error
	walk = func(dir string, ino uint64) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("backup: read %s: %w", dir, err)
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		d := t.nodes[ino]
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			var child uint64
			switch {
			case fi.IsDir():
				child = next
				next++
				t.nodes[child] = &dirNode{attr: attrOf(fi, child, fsstate.TypeDir, ino), path: p}
				if err := walk(p, child); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				st, _ := fi.Sys().(*syscall.Stat_t)
				key := devIno{}
				if st != nil {
					key = devIno{uint64(st.Dev), st.Ino}
				}
				if prev, ok := links[key]; ok && st != nil {
					child = prev
					t.nodes[child].attr.Nlink++
				} else {
					child = next
					next++
					links[key] = child
					t.nodes[child] = &dirNode{attr: attrOf(fi, child, fsstate.TypeRegular, 0), path: p}
				}
			default:
				return fmt.Errorf("backup: %s is neither a file nor a directory", p)
			}
			d.entries = append(d.entries, fsstate.DirEntry{Name: e.Name(), Ino: child, Cookie: uint64(len(d.entries) + 1)})
		}
		return nil
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	t.nodes[fsstate.RootIno] = &dirNode{attr: attrOf(fi, fsstate.RootIno, fsstate.TypeDir, fsstate.RootIno), path: root}
	if err := walk(root, fsstate.RootIno); err != nil {
		return nil, err
	}
	// Entries carry the final attributes (link counts are known only now).
	for _, n := range t.nodes {
		for i := range n.entries {
			n.entries[i].Attr = t.nodes[n.entries[i].Ino].attr
		}
	}
	return t, nil
}

func attrOf(fi fs.FileInfo, ino uint64, typ fsstate.FileType, parent uint64) fsstate.Attr {
	mt := fsstate.Time(fi.ModTime().UnixNano())
	a := fsstate.Attr{Ino: ino, Type: typ, Mode: uint32(fi.Mode().Perm()), Nlink: 1, Atime: mt, Mtime: mt, Ctime: mt, Parent: parent}
	if typ == fsstate.TypeRegular {
		a.Size = uint64(fi.Size())
		a.Used = a.Size
	}
	return a
}

func (t *dirTree) node(ino uint64) (*dirNode, error) {
	n, ok := t.nodes[ino]
	if !ok {
		return nil, fmt.Errorf("backup: no inode %d under %s: %w", ino, t.root, syscall.ENOENT)
	}
	return n, nil
}

// GetAttr implements Tree.
func (t *dirTree) GetAttr(_, ino uint64) (fsstate.Attr, error) {
	n, err := t.node(ino)
	if err != nil {
		return fsstate.Attr{}, err
	}
	return n.attr, nil
}

// ReadDir implements Tree: cookies are positions, from 1.
func (t *dirTree) ReadDir(_, dir, after uint64, max int) ([]fsstate.DirEntry, bool, error) {
	n, err := t.node(dir)
	if err != nil {
		return nil, false, err
	}
	if after >= uint64(len(n.entries)) {
		return nil, true, nil
	}
	end := min(uint64(len(n.entries)), after+uint64(max))
	return n.entries[after:end], end == uint64(len(n.entries)), nil
}

// Readlink implements Tree; a state image holds no symlinks.
func (t *dirTree) Readlink(_, ino uint64) (string, error) {
	return "", fmt.Errorf("backup: inode %d is not a symlink: %w", ino, syscall.EINVAL)
}

// Read implements Tree.
func (t *dirTree) Read(_, ino, off uint64, n uint32) ([]byte, bool, error) {
	nd, err := t.node(ino)
	if err != nil {
		return nil, false, err
	}
	f, err := os.Open(nd.path)
	if err != nil {
		return nil, false, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, int64(off))
	if err != nil && err != io.EOF {
		return nil, false, fmt.Errorf("backup: read %s: %w", nd.path, err)
	}
	return buf[:k], off+uint64(k) >= nd.attr.Size, nil
}
