package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const nodeYAML = `cluster_id: c0ffee
node:
  id: n1
  data_dir: data
  raft_addr: 127.0.0.1:7001
  admin_addr: 127.0.0.1:7002
peers:
  - {id: n1, role: data, raft_addr: 127.0.0.1:7001, admin_addr: 127.0.0.1:7002}
tls:
  ca: ca.crt
  cert: /etc/keel/node.crt
  key: node.key
  secret: secret
raft:
  heartbeat_timeout: 2s
  election_timeout: 3s
`

func clearEnv(t *testing.T) {
	for _, k := range []string{EnvNodeID, EnvDataDir, EnvRaftAddr, EnvAdminAddr, EnvLogLevel, EnvLogFormat} {
		t.Setenv(k, "")
	}
}

func TestLoad(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	c, err := Load(writeFile(t, dir, "node.yaml", nodeYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Dir != dir {
		t.Errorf("Dir %q, want %q", c.Dir, dir)
	}
	if c.Node.DataDir != filepath.Join(dir, "data") || c.TLS.CA != filepath.Join(dir, "ca.crt") || c.TLS.Cert != "/etc/keel/node.crt" {
		t.Errorf("paths not resolved: %q %+v", c.Node.DataDir, c.TLS)
	}
	if c.Path("x") != filepath.Join(dir, "x") || c.Path("/abs") != "/abs" || c.Path("") != "" {
		t.Error("Path")
	}
	// File values over defaults; defaults where the file is silent.
	if c.Raft.HeartbeatTimeout.D() != 2*time.Second || c.Raft.ElectionTimeout.D() != 3*time.Second {
		t.Errorf("raft from file: %+v", c.Raft)
	}
	if c.Raft.LeaderLeaseTimeout.D() != 250*time.Millisecond || c.Raft.TrailingLogs != 10240 || c.Node.Role != RoleData || c.Log.Level != "info" {
		t.Errorf("defaults lost: %+v %+v", c.Raft, c.Log)
	}
}

func TestLoadUnknownField(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "node.yaml", strings.Replace(nodeYAML, "  data_dir: data\n", "  data_dir: data\n  dta_dir: oops\n", 1))
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), `"dta_dir"`) || !strings.Contains(err.Error(), "in node") || !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the field, section and file: %v", err)
	}
	_, err = Load(writeFile(t, dir, "top.yaml", "clusterid: x\n"))
	if err == nil || !strings.Contains(err.Error(), "clusterid") {
		t.Fatalf("top-level unknown field: %v", err)
	}
}

func TestLoadBadDuration(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	_, err := Load(writeFile(t, dir, "node.yaml", strings.Replace(nodeYAML, "heartbeat_timeout: 2s", "heartbeat_timeout: 1000", 1)))
	if err == nil || !strings.Contains(err.Error(), `"1000"`) {
		t.Fatalf("error does not name the value: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || !strings.Contains(err.Error(), "keel init") {
		t.Fatalf("got %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "node.yaml", nodeYAML)
	t.Setenv(EnvNodeID, "n7")
	t.Setenv(EnvDataDir, "/srv/keel")
	t.Setenv(EnvRaftAddr, "127.0.0.7:7001")
	t.Setenv(EnvAdminAddr, "127.0.0.7:7002")
	t.Setenv(EnvLogLevel, "debug")
	t.Setenv(EnvLogFormat, "json")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := NodeConfig{ID: "n7", Role: RoleData, DataDir: "/srv/keel", RaftAddr: "127.0.0.7:7001", AdminAddr: "127.0.0.7:7002"}
	if c.Node != want || c.Log != (Log{Level: "debug", Format: "json"}) {
		t.Fatalf("got %+v %+v", c.Node, c.Log)
	}
	// Empty variables do not override.
	t.Setenv(EnvLogLevel, "")
	if c, err = Load(p); err != nil || c.Log.Level != "info" {
		t.Fatalf("empty env overrode: %v %+v", err, c.Log)
	}
}

func TestDurationRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := good()
	c.Raft.CommitTimeout = Duration(250 * time.Millisecond)
	c.Raft.HeartbeatTimeout = Duration(time.Second)
	p := filepath.Join(dir, "node.yaml")
	if err := Write(p, &c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "commit_timeout: 250ms") || !strings.Contains(string(b), "heartbeat_timeout: 1s") {
		t.Fatalf("durations not written as strings:\n%s", b)
	}
	clearEnv(t)
	back, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Raft != c.Raft {
		t.Fatalf("raft %+v, want %+v", back.Raft, c.Raft)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestLoadNFSSizes(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	c, err := Load(writeFile(t, dir, "node.yaml", nodeYAML+"nfs:\n  max_inflight_bytes: 1GiB\n  max_conn_inflight_bytes: 33554432\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NFS.MaxInflightBytes != 1<<30 || c.NFS.MaxConnInflightBytes != 32<<20 {
		t.Fatalf("nfs %+v", c.NFS)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "out.yaml")
	if err := Write(p, c); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "max_inflight_bytes: 1GiB") || !strings.Contains(string(b), "max_conn_inflight_bytes: 32MiB") {
		t.Fatalf("sizes not written in binary units:\n%s", b)
	}
	if back, err := Load(p); err != nil || back.NFS != c.NFS {
		t.Fatalf("read back %+v, %v; want %+v", back.NFS, err, c.NFS)
	}
	_, err = Load(writeFile(t, dir, "bad.yaml", nodeYAML+"nfs:\n  max_inflight_bytes: lots\n"))
	if err == nil || !strings.Contains(err.Error(), `"lots"`) || !strings.Contains(err.Error(), "256MiB") && !strings.Contains(err.Error(), "500MiB") {
		t.Fatalf("a bad size: %v", err)
	}
	// Without an nfs section nothing is written for it.
	g := good()
	if err := Write(p, &g); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); strings.Contains(string(b), "nfs:") {
		t.Fatalf("an empty nfs section was written:\n%s", b)
	}
}
