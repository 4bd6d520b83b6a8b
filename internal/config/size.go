package config

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"keel/internal/units"
)

// Size is a number of bytes that reads and writes as "256MiB" (a plain
// number is bytes).
type Size uint64

// String returns the value in the largest binary unit that divides it,
// e.g. "256MiB", "1536KiB", "1000".
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && uint64(s)%u.mult == 0 {
			return strconv.FormatUint(uint64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(s), 10)
}

// MarshalYAML writes the value as a string such as "256MiB".
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML reads "256MiB", "1GiB", "300MB" or a number of bytes. The
// error is a *yaml.TypeError so that the decoder goes on and reports the
// file's other problems with it.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a size must be a string such as \"256MiB\"", n.Line)}}
	}
	v, err := units.ParseSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = Size(v)
	return nil
}

// MarshalText writes the value as a string such as "256MiB" (used by JSON).
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a string such as "256MiB".
func (s *Size) UnmarshalText(b []byte) error {
	v, err := units.ParseSize(string(b))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	*s = Size(v)
	return nil
}
