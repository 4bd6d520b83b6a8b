package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeUnit(t *testing.T) {
	u, err := Unit(Spec{Kind: KindNode, Binary: "/usr/local/bin/keel", Config: "/var/lib/keel/node.yaml", User: "keel"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/keel serve --config /var/lib/keel/node.yaml\n",
		"ExecStartPre=+/bin/chown -R keel:keel /var/lib/keel\n",
		"User=keel\nGroup=keel\n",
		"Restart=on-failure\n", "LimitNOFILE=1048576\n", "KillSignal=SIGTERM\n",
		"After=network-online.target\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("node unit lacks %q:\n%s", want, u)
		}
	}
}

func TestTunnelUnit(t *testing.T) {
	u, err := Unit(Spec{Kind: KindTunnel, Binary: "/usr/local/bin/keel", Config: "/etc/keel/client.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "ExecStart=/usr/local/bin/keel tunnel --cluster /etc/keel/client.yaml --listen 127.0.0.1:2049\n") ||
		strings.Contains(u, "User=") || strings.Contains(u, "chown") || !strings.Contains(u, "Restart=on-failure") {
		t.Fatalf("tunnel unit:\n%s", u)
	}
}

func TestBadSpecs(t *testing.T) {
	for name, s := range map[string]Spec{
		"kind":          {Kind: "db", Binary: "/k", Config: "/c"},
		"relative":      {Kind: KindNode, Binary: "keel", Config: "/c"},
		"space in path": {Kind: KindNode, Binary: "/k", Config: "/my dir/node.yaml"},
		"unit name":     {Kind: KindNode, Name: "a b", Binary: "/k", Config: "/c"},
	} {
		if _, err := Unit(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// systemd-analyze verify accepts both units, when it is installed.
func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd): the unit files are checked by content only")
	}
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Spec{
		{Kind: KindNode, Name: "keel-node-test", Binary: bin, Config: cfg},
		{Kind: KindTunnel, Name: "keel-tunnel-test", Binary: bin, Config: cfg},
	} {
		p, err := Install(s, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput()
		if err != nil || strings.Contains(string(out), filepath.Base(p)) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", p, err, out)
		}
	}
}
