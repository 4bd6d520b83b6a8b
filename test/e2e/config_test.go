package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/config"
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
			for _, addr := range []string{m.AdminAddr, m.RaftAddr, m.NFSAddr} {
				if listening(addr) {
					t.Errorf("something listens on %s after keel serve refused its config", addr)
				}
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

// TestInitOneHostPorts runs keel init the way its help describes for several
// nodes on one host, ID=HOST:RAFTPORT:ADMINPORT: the configs it writes must
// not make two nodes listen on the same address (or init must refuse).
func TestInitOneHostPorts(t *testing.T) {
	requireBinary(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	ports := freePorts(t, 6)
	args := []string{"init", "--dir", dir}
	for i := 0; i < 3; i++ {
		args = append(args, "--node", fmt.Sprintf("n%d=127.0.0.1:%d:%d", i+1, ports[2*i], ports[2*i+1]))
	}
	r := runKeel(t, 30*time.Second, args...)
	if r.Code != 0 {
		t.Logf("keel init refused: %s", r.Stderr)
		return
	}
	seen := map[string]string{} // address → "n1 nfs_addr"
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		cfg, err := config.Load(filepath.Join(dir, "nodes", id, "node.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for field, addr := range map[string]string{"raft_addr": cfg.Node.RaftAddr, "admin_addr": cfg.Node.AdminAddr,
			"nfs_addr": cfg.Node.NFSAddr, "portmap_addr": cfg.Node.PortmapAddr} {
			if addr == "" {
				continue
			}
			if prev, dup := seen[addr]; dup {
				t.Errorf("keel init gave %s %s %s, which is also %s: the second node to start cannot listen there",
					id, field, addr, prev)
				continue
			}
			seen[addr] = id + " " + field
		}
	}
}
