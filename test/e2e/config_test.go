package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadConfig runs keel serve on broken node.yaml files: it must exit
// non-zero, name the offending field on stderr, and leave nothing listening
// on the node's ports. The unchanged config is the control: it serves.
func TestBadConfig(t *testing.T) {
	c := initCluster(t, Shape{Data: 1})
	m := c.Members[0]
	orig, err := os.ReadFile(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(doc map[string]any)
		wants []string // each must appear on stderr
	}{
		{
			name:  "invalid raft_addr",
			edit:  func(doc map[string]any) { section(doc, "node")["raft_addr"] = "not-an-address" },
			wants: []string{"node.raft_addr", "not-an-address"},
		},
		{
			name: "invalid raft_addr and an unknown field",
			edit: func(doc map[string]any) {
				node := section(doc, "node")
				node["raft_addr"] = "not-an-address"
				node["raft_adress"] = "127.0.0.1:1" // a typo of a real field
			},
			wants: []string{"raft_adress", "unknown field"},
		},
		{
			name:  "raft timing below the minimum",
			edit:  func(doc map[string]any) { section(doc, "raft")["election_timeout"] = "1ms" },
			wants: []string{"raft.election_timeout"},
		},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			// In the node's directory, so that its relative paths resolve.
			path := filepath.Join(m.Dir, "bad.yaml")
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			editYAML(t, path, tc.edit)
			r := runKeel(t, 20*time.Second, "serve", "--config", path)
			switch r.Code {
			case 0:
				t.Fatalf("keel serve accepted the config (exit 0); stderr:\n%s", r.Stderr)
			case -1:
				t.Fatalf("keel serve was still running after 20s; stderr:\n%s", r.Stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.Stderr)
				}
			}
			if strings.Contains(r.Stderr, "panic") {
				t.Errorf("keel serve panicked:\n%s", r.Stderr)
			}
			if listening(m.AdminAddr) || listening(m.RaftAddr) {
				t.Errorf("something listens on %s or %s after keel serve refused its config", m.AdminAddr, m.RaftAddr)
			}
			t.Logf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
		})
	}

	// Control: the generated config serves on the admin port.
	m.Start()
	if !listening(m.AdminAddr) {
		t.Errorf("the valid config does not serve on %s", m.AdminAddr)
	}
	m.Stop()
}
