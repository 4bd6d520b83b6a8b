package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/internal/config"
)

func TestDataDirIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{ClusterID: "aaa", Node: config.NodeConfig{ID: "n1", Role: config.RoleData}}
	if err := checkIdentity(dir, cfg); err != nil {
		t.Fatalf("fresh dir: %v", err)
	}
	if err := checkIdentity(dir, cfg); err != nil {
		t.Fatalf("same cluster again: %v", err)
	}
	cases := []struct {
		name string
		mod  func(c *config.Config)
		want string
	}{
		{"other cluster", func(c *config.Config) { c.ClusterID = "bbb" }, "belongs to cluster aaa"},
		{"other node", func(c *config.Config) { c.Node.ID = "n2" }, "belongs to node n1"},
		{"other role", func(c *config.Config) { c.Node.Role = config.RoleWitness }, "role cannot change"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := *cfg
			tc.mod(&c)
			err := checkIdentity(dir, &c)
			if !errors.Is(err, ErrForeignDataDir) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrForeignDataDir mentioning %q", err, tc.want)
			}
		})
	}
	// A non-empty directory without an identity is not taken over.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "something"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkIdentity(other, cfg); !errors.Is(err, ErrForeignDataDir) {
		t.Fatalf("non-empty dir without IDENTITY: %v", err)
	}
}

// An upgrade to a keel that reads another data format refuses to start on
// the old directory, saying which format it holds and which it reads, and
// leaves the directory as it was.
func TestDataFormatMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{ClusterID: "aaa", Node: config.NodeConfig{ID: "n1", Role: config.RoleData}}
	if err := checkIdentity(dir, cfg); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "IDENTITY")
	b, _ := os.ReadFile(p)
	old := strings.Replace(string(b), `"data_format": 1`, `"data_format": 99`, 1)
	if old == string(b) {
		t.Fatalf("IDENTITY has no data_format 1: %s", b)
	}
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkIdentity(dir, cfg)
	if err == nil || !strings.Contains(err.Error(), "holds data format 99") || !strings.Contains(err.Error(), "reads format 1") {
		t.Fatalf("got %v", err)
	}
	if after, _ := os.ReadFile(p); string(after) != old {
		t.Fatal("the refused start changed IDENTITY")
	}
}
