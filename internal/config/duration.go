package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// String returns the value in time.Duration notation, e.g. "1s", "250ms".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the value as a string such as "1s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a string such as "1s" or "250ms". A number without a
// unit, or anything else time.ParseDuration refuses, is an error naming the
// value and its line. The error is a *yaml.TypeError so that the decoder
// goes on and reports the file's other problems with it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a string such as \"1s\" or \"250ms\"", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (%v): write it with a unit, e.g. \"1s\" or \"250ms\"", n.Line, n.Value, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the value as a string such as "1s" (used by JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a string such as "1s" or "250ms".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("config: %q is not a duration (%w): write it with a unit, e.g. \"1s\" or \"250ms\"", b, err)
	}
	*d = Duration(v)
	return nil
}
