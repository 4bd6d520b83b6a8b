package deploy

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseHost(t *testing.T) {
	h, err := ParseHost("admin@10.0.0.1:2222", "data", "root")
	if err != nil || h.User != "admin" || h.Host != "10.0.0.1" || h.Port != 2222 {
		t.Fatalf("%+v %v", h, err)
	}
	h, err = ParseHost("node-a", "client", "root")
	if err != nil || h.User != "root" || h.Host != "node-a" || h.Port != 22 {
		t.Fatalf("%+v %v", h, err)
	}
	for _, bad := range []string{"", "@x", "x:0", "x:port", "a b"} {
		if _, err := ParseHost(bad, "data", "root"); err == nil {
			t.Errorf("ParseHost(%q) accepted", bad)
		}
	}
}

func TestShapesRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"no key":           {Data: []string{"a", "b", "c"}},
		"no data":          {SSHKey: "k"},
		"two data alone":   {SSHKey: "k", Data: []string{"a", "b"}},
		"witness beside 1": {SSHKey: "k", Data: []string{"a"}, Witness: []string{"w"}},
		"two witnesses":    {SSHKey: "k", Data: []string{"a", "b"}, Witness: []string{"w", "x"}},
		"relative dir":     {SSHKey: "k", Data: []string{"a", "b", "c"}, RemoteDir: "keel"},
	} {
		if err := o.defaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Host keys: an unknown host and a changed key are refused with what to do.
func TestKnownHosts(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	key := filepath.Join(dir, "id")
	if err := os.WriteFile(key, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewPublicKey(hostPriv.Public())
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(otherPriv.Public())
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte("10.0.0.1 "+string(ssh.MarshalAuthorizedKey(hostKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := sshConfig(key, kh, false, "root")
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 22}
	if err := cfg.HostKeyCallback("10.0.0.1:22", addr, hostKey); err != nil {
		t.Fatalf("known key refused: %v", err)
	}
	if err := cfg.HostKeyCallback("10.0.0.1:22", addr, otherKey); err == nil || !strings.Contains(err.Error(), "DIFFERS") {
		t.Fatalf("changed key: %v", err)
	}
	addr2 := &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 22}
	if err := cfg.HostKeyCallback("10.0.0.2:22", addr2, hostKey); err == nil || !strings.Contains(err.Error(), "ssh-keyscan") {
		t.Fatalf("unknown host: %v", err)
	}
	if _, err := sshConfig(key, filepath.Join(dir, "missing"), false, "root"); err == nil || !strings.Contains(err.Error(), "insecure-ignore-host-key") {
		t.Fatalf("missing known_hosts: %v", err)
	}
	if cfg, err := sshConfig(key, "", true, "root"); err != nil || cfg.HostKeyCallback("x:22", addr2, otherKey) != nil {
		t.Fatalf("insecure: %v", err)
	}
}
