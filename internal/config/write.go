package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"keel/internal/tlsutil"
)

// Write writes v (a Config, Client or anything YAML can encode) to path as
// YAML, atomically and with mode 0600.
func Write(path string, v any) error {
	return writeYAML(path, "", v)
}

// writeYAML writes v to path after header, a comment (each line gets "# ").
func writeYAML(path, header string, v any) error {
	var buf bytes.Buffer
	for _, l := range strings.Split(header, "\n") {
		if header != "" {
			buf.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("config: encode %s: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("config: encode %s: %w", path, err)
	}
	if err := tlsutil.WriteFile0600(path, buf.Bytes()); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// SecretSize is the size of the cluster secret in bytes.
const SecretSize = 32

// ReadSecret reads a cluster secret file (hex, as written by Generate) and
// returns its bytes; it must hold at least SecretSize bytes.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read cluster secret: %w: copy the secret file `keel init` made into the node's directory", err)
	}
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("config: cluster secret %s is not hex: %w: copy the secret file `keel init` made", path, err)
	}
	if len(s) < SecretSize {
		return nil, fmt.Errorf("config: cluster secret %s holds %d bytes, want at least %d: copy the secret file `keel init` made", path, len(s), SecretSize)
	}
	return s, nil
}

// WriteWithHeader is Write with a comment header (each line gets "# ").
func WriteWithHeader(path, header string, v any) error {
	return writeYAML(path, header, v)
}
