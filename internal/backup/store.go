package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"keel/internal/backup/file"
	"keel/internal/backup/s3"
)

// Store is where backups are kept: a flat space of immutable objects by
// key. Keys are slash-separated relative paths ("chunks/ab/ab12…").
//
// Put must be atomic: an object is either absent or complete (a file store
// writes a temporary file and renames it; S3 PUTs are atomic), and it must
// fail if r does not give exactly size bytes. Get of a missing key returns
// an error matching fs.ErrNotExist. Delete of a missing key is no error.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (size int64, exists bool, err error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// Syncer is implemented by stores whose Puts are atomic at once but durable
// only after Sync (a directory: the renames). Push syncs before it writes a
// manifest, so that a manifest never outlives the chunks it names, and
// after.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Sweeper is implemented by stores that can hold the leftovers of uploads
// that died midway (a file store's temporary files). Prune calls it to
// remove those older than a day: no upload still running is that old.
type Sweeper interface {
	SweepStale(ctx context.Context, olderThan time.Duration) (removed int, err error)
}

func syncStore(ctx context.Context, st Store) error {
	if s, ok := st.(Syncer); ok {
		if err := s.Sync(ctx); err != nil {
			return fmt.Errorf("backup: sync the backup store: %w", err)
		}
	}
	return nil
}

// Sentinel errors; the messages that wrap them name the object.
var (
	ErrUnknownScheme = errors.New("backup: unsupported backup URL")
	ErrMissing       = errors.New("backup: object missing")
	ErrCorrupt       = errors.New("backup: object corrupt")
	ErrNoBackup      = errors.New("backup: no such backup")
	ErrUnchanged     = errors.New("backup: nothing changed since the previous backup")
)

// Open returns the store a backup URL names. Supported: file:///abs/path
// (a directory on the machine that runs the operation: the leader) and
// s3://bucket/prefix (see backup/s3 for its settings).
func Open(rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrUnknownScheme, rawURL, err)
	}
	switch u.Scheme {
	case "file":
		return file.Open(u)
	case "s3":
		return s3.Open(u)
	case "":
		return nil, fmt.Errorf("%w %q: write a URL such as file:///var/backups/keel or s3://bucket/prefix", ErrUnknownScheme, rawURL)
	}
	return nil, fmt.Errorf("%w %s: unknown scheme %q; supported: file:///path and s3://bucket/prefix", ErrUnknownScheme, u.Redacted(), u.Scheme)
}

// Object key layout.
const (
	chunkPrefix    = "chunks/"
	manifestPrefix = "backups/"
	lockPrefix     = "locks/"
)

// ChunkKey returns the key of the chunk whose SHA-256 is hash (lower-case
// hex).
func ChunkKey(hash string) string { return chunkPrefix + hash[:2] + "/" + hash }

// ManifestKey returns the key of backup id of a volume.
func ManifestKey(volume, id string) string { return manifestPrefix + volume + "/" + id + ".json" }

func lockKey(id string) string { return lockPrefix + id + ".json" }

// parseManifestKey splits backups/<volume>/<id>.json.
func parseManifestKey(key string) (volume, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, manifestPrefix)
	if !ok {
		return "", "", false
	}
	volume, name, ok := strings.Cut(rest, "/")
	id, isJSON := strings.CutSuffix(name, ".json")
	if !ok || !isJSON || volume == "" || !ValidID(id) {
		return "", "", false
	}
	return volume, id, true
}

// hashFromChunkKey returns the hash a chunk key names ("" if it is not one).
func hashFromChunkKey(key string) string {
	rest, ok := strings.CutPrefix(key, chunkPrefix)
	if !ok || len(rest) != 3+64 || rest[2] != '/' || rest[:2] != rest[3:5] || !validHash(rest[3:]) {
		return ""
	}
	return rest[3:]
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// idLayout is the time part of a backup id; ids sort by time.
const idLayout = "20060102T150405Z"

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,32}$`)

// NewID returns a backup id for time t: 20261125T154000Z-1a2b3c.
func NewID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format(idLayout) + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form NewID makes.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ParseRef splits "URL@ID" into the URL and the backup id. A URL without a
// suffix that looks like an id is returned whole, with id "".
func ParseRef(ref string) (rawURL, id string) {
	if i := strings.LastIndex(ref, "@"); i > 0 && ValidID(ref[i+1:]) {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}
