package testkit

import (
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

// EditYAML rewrites a YAML file (a node.yaml, a client.yaml) through fn;
// comments are dropped.
func EditYAML(t testing.TB, path string, fn func(doc map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	fn(doc)
	if b, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Section returns doc[key] as a mapping, making it if missing.
func Section(doc map[string]any, key string) map[string]any {
	if m, ok := doc[key].(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	doc[key] = m
	return m
}
