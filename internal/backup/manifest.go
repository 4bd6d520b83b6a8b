package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"keel/internal/fsstate"
)

// FormatVersion is the version of the manifest format this package writes
// and reads.
const FormatVersion = 1

// maxManifestBytes bounds how much of a manifest object is read.
const maxManifestBytes = 4 << 30

// Manifest describes one backup: a volume's whole tree at one snapshot.
type Manifest struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Volume    string    `json:"volume"`
	VolumeID  uint64    `json:"volume_id"`
	SizeLimit uint64    `json:"size_limit"`
	Export    Export    `json:"export"` // recorded, not applied by restore
	Snapshot  Snapshot  `json:"snapshot"`
	Written   time.Time `json:"written"` // when the push finished
	ChunkSize int       `json:"chunk_size"`
	Totals    Totals    `json:"totals"`
	Inodes    []Inode   `json:"inodes"` // the root first; every directory before its entries

	// Kind is "" for a volume backup and KindState for a node's state
	// image (state.go), whose Volume is StateVolume and State is set.
	Kind  string      `json:"kind,omitempty"`
	State *StateImage `json:"state,omitempty"`
}

// Snapshot is the volume snapshot a backup was read from.
type Snapshot struct {
	Name      string    `json:"name"`
	RaftIndex uint64    `json:"raft_index"` // the snapshot holds the state just before this entry
	Time      time.Time `json:"time"`
}

// Export is the volume's NFS export when it was backed up.
type Export struct {
	Clients  []string `json:"clients"`
	ReadOnly bool     `json:"read_only"`
	Squash   string   `json:"squash"`
	AnonUID  uint32   `json:"anon_uid"`
	AnonGID  uint32   `json:"anon_gid"`
}

// Totals sum up a backup.
type Totals struct {
	Inodes    int64  `json:"inodes"`
	Files     int64  `json:"files"` // regular files (inodes, not paths)
	Dirs      int64  `json:"dirs"`  // the root included
	Symlinks  int64  `json:"symlinks"`
	HardLinks int64  `json:"hard_links"` // paths beyond each inode's first
	Bytes     uint64 `json:"bytes"`      // sum of regular files' sizes
	DataBytes uint64 `json:"data_bytes"` // bytes in stored chunks (holes excluded), repeats counted
	Chunks    int64  `json:"chunks"`     // chunk references
	Distinct  int64  `json:"distinct_chunks"`
	DistinctB uint64 `json:"distinct_bytes"` // bytes of the distinct chunks
}

// Inode is one file, directory or symlink.
type Inode struct {
	Ino    uint64    `json:"ino"` // its number in the source volume
	Type   string    `json:"type"`
	Paths  []Name    `json:"paths"` // one for directories; several for hard links
	Mode   uint32    `json:"mode"`  // permission bits (07777)
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Atime  time.Time `json:"atime"`
	Mtime  time.Time `json:"mtime"`
	Ctime  time.Time `json:"ctime"` // recorded; a restore cannot set it
	Size   uint64    `json:"size"`
	Target Name      `json:"target,omitempty"` // symlinks
	Chunks []Chunk   `json:"chunks,omitempty"` // regular files: stored pieces, by offset
}

// Inode types.
const (
	TypeDir     = "dir"
	TypeFile    = "file"
	TypeSymlink = "symlink"
)

// Chunk is a piece of a file's data: Len bytes at Off, stored under
// ChunkKey(Hash). Offsets are multiples of the chunk size; a chunk is
// shorter only at the end of its file; ranges without a chunk are holes.
type Chunk struct {
	Off  uint64 `json:"off"`
	Len  uint32 `json:"len"`
	Hash string `json:"sha256"`
}

// Name is a string JSON keeps byte for byte: valid UTF-8 as a JSON string,
// anything else (file names are bytes) as {"base64": "…"}.
type Name string

// MarshalJSON implements json.Marshaler.
func (n Name) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(n)) {
		return json.Marshal(string(n))
	}
	return json.Marshal(struct {
		B64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString([]byte(n))})
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Name) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		*n = Name(s)
		return err
	}
	var o struct {
		B64 *string `json:"base64"`
	}
	if err := json.Unmarshal(b, &o); err != nil || o.B64 == nil {
		return fmt.Errorf("a name must be a string or {\"base64\": …}")
	}
	raw, err := base64.StdEncoding.DecodeString(*o.B64)
	*n = Name(raw)
	return err
}

// envelope is the manifest object: the manifest's JSON, and the SHA-256 of
// exactly those bytes.
type envelope struct {
	Format   int             `json:"format"`
	SHA256   string          `json:"sha256"`
	Manifest json.RawMessage `json:"manifest"`
}

// Encode returns the manifest object's bytes.
func (m *Manifest) Encode() ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("backup: encode manifest: %w", err)
	}
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"format\":%d,\"sha256\":\"%s\",\"manifest\":", FormatVersion, hex.EncodeToString(sum[:]))
	b.Write(body)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// DecodeManifest checks a manifest object's checksum and structure and
// returns the manifest. Errors wrap ErrCorrupt.
func DecodeManifest(b []byte) (*Manifest, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%w: not a complete manifest (truncated?): %v", ErrCorrupt, err)
	}
	if env.Format != FormatVersion {
		return nil, fmt.Errorf("%w: manifest format %d; this keel reads format %d", ErrCorrupt, env.Format, FormatVersion)
	}
	sum := sha256.Sum256(env.Manifest)
	if hex.EncodeToString(sum[:]) != env.SHA256 {
		return nil, fmt.Errorf("%w: manifest checksum mismatch (altered or damaged): recorded %.16s…, content hashes to %.16s…",
			ErrCorrupt, env.SHA256, hex.EncodeToString(sum[:]))
	}
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader(env.Manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, m.ID, err)
	}
	return m, nil
}

// validate checks what restore relies on: paths that make a tree, chunks
// that tile their files.
func (m *Manifest) validate() error {
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("format %d", m.Format)
	case !ValidID(m.ID):
		return fmt.Errorf("bad id %q", m.ID)
	case m.Kind == KindState && (m.Volume != StateVolume || m.State == nil || m.State.ClusterID == ""):
		return fmt.Errorf("state image %s without its volume name, cluster id or raft metadata", m.ID)
	case m.Kind != KindState && (m.Kind != "" || m.State != nil):
		return fmt.Errorf("unknown backup kind %q", m.Kind)
	case m.Kind == "" && !fsstate.ValidVolumeName(m.Volume):
		return fmt.Errorf("bad volume name %q", m.Volume)
	case m.ChunkSize != fsstate.ChunkSize:
		return fmt.Errorf("chunk size %d; this keel uses %d", m.ChunkSize, fsstate.ChunkSize)
	case len(m.Inodes) == 0 || m.Inodes[0].Type != TypeDir || len(m.Inodes[0].Paths) != 1 || m.Inodes[0].Paths[0] != "/":
		return errors.New("the first inode is not the root directory")
	}
	dirs := map[Name]bool{}
	for _, n := range m.Inodes {
		if n.Type == TypeDir {
			if len(n.Paths) != 1 {
				return fmt.Errorf("directory %d has %d paths", n.Ino, len(n.Paths))
			}
			dirs[n.Paths[0]] = true
		}
	}
	seen := map[Name]bool{}
	made := map[Name]bool{} // directories met so far
	for i, n := range m.Inodes {
		if n.Mode > 0o7777 {
			return fmt.Errorf("inode %d: mode %o", n.Ino, n.Mode)
		}
		if len(n.Paths) == 0 {
			return fmt.Errorf("inode %d has no path", n.Ino)
		}
		for _, p := range n.Paths {
			if seen[p] {
				return fmt.Errorf("path %q appears twice", p)
			}
			seen[p] = true
			if i == 0 {
				continue
			}
			parent, _, err := splitPath(p)
			if err != nil {
				return err
			}
			if !dirs[parent] || n.Type == TypeDir && !made[parent] {
				return fmt.Errorf("the parent of %q is not a directory listed before it", p)
			}
		}
		if n.Type != TypeFile && (len(n.Chunks) > 0 || n.Size > 0) {
			return fmt.Errorf("%s %q has data", n.Type, n.Paths[0])
		}
		switch n.Type {
		case TypeDir:
			made[n.Paths[0]] = true
		case TypeSymlink:
			if n.Target == "" || len(n.Paths) != 1 {
				return fmt.Errorf("symlink %q: empty target or several paths", n.Paths[0])
			}
		case TypeFile:
			if err := checkChunks(n); err != nil {
				return fmt.Errorf("file %q: %v", n.Paths[0], err)
			}
		default:
			return fmt.Errorf("inode %d: unknown type %q", n.Ino, n.Type)
		}
	}
	return nil
}

func checkChunks(n Inode) error {
	next := uint64(0)
	for _, c := range n.Chunks {
		end := c.Off + uint64(c.Len)
		switch {
		case !validHash(c.Hash):
			return fmt.Errorf("bad chunk hash %q", c.Hash)
		case c.Off%fsstate.ChunkSize != 0 || c.Off < next:
			return fmt.Errorf("chunk at %d out of place", c.Off)
		case c.Len == 0 || c.Len > fsstate.ChunkSize || end > n.Size || end < c.Off:
			return fmt.Errorf("chunk at %d of %d bytes does not fit a file of %d", c.Off, c.Len, n.Size)
		case c.Len < fsstate.ChunkSize && end != n.Size:
			return fmt.Errorf("short chunk at %d not at the end", c.Off)
		}
		next = end
	}
	return nil
}

// splitPath returns the parent directory and last name of an absolute path.
func splitPath(p Name) (parent Name, name string, err error) {
	s := string(p)
	i := strings.LastIndex(s, "/")
	if !strings.HasPrefix(s, "/") || i < 0 {
		return "", "", fmt.Errorf("path %q is not absolute", p)
	}
	name = s[i+1:]
	if name == "" || name == "." || name == ".." || len(name) > fsstate.MaxNameLen || strings.ContainsRune(name, 0) {
		return "", "", fmt.Errorf("path %q has a bad name", p)
	}
	if i == 0 {
		return "/", name, nil
	}
	return Name(s[:i]), name, nil
}

func joinPath(dir Name, name string) Name {
	if dir == "/" {
		return Name("/" + name)
	}
	return dir + "/" + Name(name)
}

// LoadManifest reads, checks and decodes the manifest object under key.
func LoadManifest(ctx context.Context, st Store, key string) (*Manifest, error) {
	rc, err := st.Get(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: manifest %s", ErrMissing, key)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: read manifest %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes))
	if err != nil {
		return nil, fmt.Errorf("backup: read manifest %s: %w", key, err)
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	if v, id, _ := parseManifestKey(key); v != m.Volume || id != m.ID {
		return nil, fmt.Errorf("%w: manifest %s holds backup %s of volume %s", ErrCorrupt, key, m.ID, m.Volume)
	}
	return m, nil
}
