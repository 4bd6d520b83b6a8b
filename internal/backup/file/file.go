// Package file keeps backup objects as files in a local directory (a
// file:///path backup URL): one file per key, keys' slashes as
// subdirectories. It satisfies backup.Store (and backup.Syncer).
//
// Put writes into a hidden temporary file in the key's directory, checks
// that it got exactly the announced number of bytes, fsyncs it and renames
// it over the key: an interrupted upload leaves at most a ".tmp-" file,
// never a complete-looking object. List skips those temporaries, and
// SweepStale (which prune calls) removes those older than a day. The
// renames are made durable by Sync, which fsyncs the store's directories
// once for many objects (a push calls it before and after writing its
// manifest).
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// tmpPrefix starts the names of files being written.
const tmpPrefix = ".tmp-"

// Store is a directory of backup objects.
type Store struct {
	root string
}

// New returns the store kept in directory root. The directory is made by
// the first Put; until then the store is empty.
func New(root string) (*Store, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("backup/file: %q: the backup directory must be an absolute path", root)
	}
	return &Store{root: filepath.Clean(root)}, nil
}

// Open returns the store of a file:///path URL.
func Open(u *url.URL) (*Store, error) {
	if u.Scheme != "file" {
		return nil, fmt.Errorf("backup/file: %s is not a file:// URL", u.Redacted())
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("backup/file: %s names host %q: write file:///absolute/path (three slashes)", u.Redacted(), u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("backup/file: %s: a file:// URL takes no query or fragment", u.Redacted())
	}
	return New(u.Path)
}

// Root returns the directory the store keeps its objects in.
func (s *Store) Root() string { return s.root }

func (s *Store) String() string { return "file://" + s.root }

// path returns the file of a key, refusing keys that would leave the root.
func (s *Store) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return "", fmt.Errorf("backup/file: bad key %q", key)
	}
	for _, c := range strings.Split(key, "/") {
		if c == "" || c == "." || c == ".." || strings.HasPrefix(c, tmpPrefix) || strings.ContainsRune(c, 0) {
			return "", fmt.Errorf("backup/file: bad key %q", key)
		}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put stores size bytes from r under key, atomically.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, io.LimitReader(r, size+1)})
	if err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("backup/file: put %s: got %d bytes, expected %d", key, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("backup/file: put %s: %w", key, err)
	}
	return nil
}

// Sync makes the objects put so far durable: Put fsyncs each file before
// renaming it into place, and Sync fsyncs the directories that hold the
// names (one fsync per directory rather than one per object).
func (s *Store) Sync(ctx context.Context) error {
	dirs := []string{s.root}
	for _, top := range []string{"chunks", "backups", "locks"} {
		d := filepath.Join(s.root, top)
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("backup/file: sync: %w", err)
		}
		dirs = append(dirs, d)
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(d, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// SweepStale removes the temporary files of uploads that started more than
// olderThan ago (an upload that died: a crash, a kill) and returns how many
// it removed.
func (s *Store) SweepStale(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := walkFiles(ctx, s.root, func(p string, d fs.DirEntry) error {
		if !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("backup/file: remove stale temporary files: %w", err)
	}
	return removed, nil
}

// Get opens the object under key; a missing one gives an error matching
// fs.ErrNotExist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("backup/file: get %s: %w", key, err)
	}
	return f, nil
}

// Stat returns the size of the object under key and whether it exists.
func (s *Store) Stat(ctx context.Context, key string) (int64, bool, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, false, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("backup/file: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, false, fmt.Errorf("backup/file: %s is not a regular file", p)
	}
	return fi.Size(), true, nil
}

// List returns the keys that start with prefix, sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	// Walk only the directory the prefix's complete components name.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
		if !strings.HasPrefix(start, s.root+string(filepath.Separator)) {
			return nil, fmt.Errorf("backup/file: bad prefix %q", prefix)
		}
	}
	var keys []string
	err := walkFiles(ctx, start, func(p string, d fs.DirEntry) error {
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup/file: list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// Delete removes the object under key; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup/file: delete %s: %w", key, err)
	}
	return nil
}

// walkFiles calls fn for each regular file under dir (none if dir does
// not exist), stopping when ctx ends.
func walkFiles(ctx context.Context, dir string, fn func(p string, d fs.DirEntry) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return fn(p, d)
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup/file: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup/file: sync %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
