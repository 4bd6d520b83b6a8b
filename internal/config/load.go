package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Environment variables read by Load, after the file and before flags.
const (
	EnvNodeID    = "KEEL_NODE_ID"
	EnvDataDir   = "KEEL_DATA_DIR" // a relative value is relative to the working directory
	EnvRaftAddr  = "KEEL_RAFT_ADDR"
	EnvAdminAddr = "KEEL_ADMIN_ADDR"
	EnvLogLevel  = "KEEL_LOG_LEVEL"
	EnvLogFormat = "KEEL_LOG_FORMAT"
)

// Load reads a node config: the defaults, then the YAML file at path
// (strictly: an unknown field is an error naming it), then the KEEL_*
// environment variables. Dir is set to the file's directory (absolute) and
// relative tls paths and node.data_dir in the file are resolved against it,
// so every path in the result can be used as is. Load does not validate:
// apply flags, then call Validate.
func Load(path string) (*Config, error) {
	c := Default()
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.Dir = dir
	c.Node.DataDir = c.Path(c.Node.DataDir)
	c.TLS = c.TLS.resolve(c.Path)
	c.ApplyEnv(os.LookupEnv)
	return &c, nil
}

// LoadClient reads a client config (client.yaml) strictly, sets Dir to its
// directory and resolves relative tls paths against it. It does not
// validate; call Validate.
func LoadClient(path string) (*Client, error) {
	var c Client
	if err := decodeFile(path, &c); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.Dir = dir
	c.TLS = c.TLS.resolve(c.Path)
	return &c, nil
}

// ApplyEnv overrides fields from the KEEL_* variables that lookup (normally
// os.LookupEnv) reports as set and non-empty.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{EnvNodeID, &c.Node.ID},
		{EnvDataDir, &c.Node.DataDir},
		{EnvRaftAddr, &c.Node.RaftAddr},
		{EnvAdminAddr, &c.Node.AdminAddr},
		{EnvLogLevel, &c.Log.Level},
		{EnvLogFormat, &c.Log.Format},
	} {
		if v, ok := lookup(e.name); ok && v != "" {
			*e.dst = v
		}
	}
}

// Path resolves p against the config's directory: empty and absolute paths
// are returned unchanged.
func (c *Config) Path(p string) string { return resolvePath(c.Dir, p) }

// Path resolves p against the client config's directory: empty and
// absolute paths are returned unchanged.
func (c *Client) Path(p string) string { return resolvePath(c.Dir, p) }

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// resolve returns t with every path passed through path.
func (t TLSFiles) resolve(path func(string) string) TLSFiles {
	return TLSFiles{CA: path(t.CA), Cert: path(t.Cert), Key: path(t.Key), Secret: path(t.Secret), CAKey: path(t.CAKey)}
}

// decodeFile decodes the YAML file at path into v, refusing unknown fields.
// An empty file leaves v unchanged.
func decodeFile(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w: check the path, or make one with `keel init`", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			err = &decodeError{lines: explain(te.Errors), err: err}
		}
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// decodeError rewords yaml.v3's type errors.
type decodeError struct {
	lines []string
	err   error
}

func (e *decodeError) Error() string { return strings.Join(e.lines, "\n") }
func (e *decodeError) Unwrap() error { return e.err }

var unknownFieldRe = regexp.MustCompile(`^line (\d+): field (\S+) not found in type config\.(\w+)$`)

// sections maps a Go type to the YAML section it decodes.
var sections = map[string]string{
	"Config": "at the top level", "Client": "at the top level",
	"NodeConfig": "in node", "Peer": "in peers", "TLSFiles": "in tls",
	"Raft": "in raft", "Log": "in log", "NFS": "in nfs",
}

func explain(msgs []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if s := unknownFieldRe.FindStringSubmatch(m); s != nil {
			where := sections[s[3]]
			if where == "" {
				where = "in " + s[3]
			}
			m = fmt.Sprintf("line %s: unknown field %q %s: check its spelling and indentation, or remove it", s[1], s[2], where)
		}
		out[i] = m
	}
	return out
}
