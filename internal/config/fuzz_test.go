package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: any file given as a node.yaml loads or fails with an error,
// never a panic, and a loaded config validates or fails with field errors.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("cluster_id: abc\nnode:\n  id: n1\n  role: data\n  raft_addr: 127.0.0.1:1\n"))
	f.Add([]byte("raft:\n  heartbeat_timeout: 1x\n"))
	f.Add([]byte("peers: [{id: n1}, {id: n1}]\nresources: [{name: a, interval: -1s}]\n"))
	f.Add([]byte("\x00\xff: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "node.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}
