package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"keel/internal/tlsutil"
)

func spec(dir string) InitSpec {
	return InitSpec{
		Dir: dir,
		Nodes: []NodeSpec{
			{ID: "n1", RaftPort: 7001, AdminPort: 7101},
			{ID: "n2", RaftPort: 7002, AdminPort: 7102},
			{ID: "w1", Role: RoleWitness, RaftPort: 7003, AdminPort: 7103},
		},
	}
}

func TestGenerate(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	l, err := Generate(spec(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.ClusterID) != 16 || !slices.Equal(l.NodeIDs, []string{"n1", "n2", "w1"}) {
		t.Fatalf("layout %+v", l)
	}

	// Every file 0600, every directory 0700.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	cl, err := LoadClient(l.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Validate(); err != nil {
		t.Fatal(err)
	}
	if cl.ClusterID != l.ClusterID || len(cl.Peers) != 3 || cl.TLS.Cert != filepath.Join(dir, "client.crt") {
		t.Fatalf("client %+v", cl)
	}
	caPEM, certPEM, keyPEM, err := tlsutil.LoadFiles(cl.TLS.CA, cl.TLS.Cert, cl.TLS.Key)
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := tlsutil.ClientConfig(caPEM, certPEM, keyPEM, cl.ClusterID)
	if err != nil {
		t.Fatal(err)
	}
	_ = cliTLS

	for _, id := range l.NodeIDs {
		c, err := Load(l.NodeConfigs[id])
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		nd := l.NodeDir(id)
		if c.Dir != nd || c.Node.ID != id || !c.Bootstrap || c.Node.DataDir != filepath.Join(nd, "data") || len(c.Peers) != 3 {
			t.Fatalf("%s: %+v", id, c)
		}
		if c.Raft != DefaultRaft() {
			t.Fatalf("%s: raft %+v", id, c.Raft)
		}
		// Everything the node needs is inside its own directory.
		for _, p := range []string{c.TLS.CA, c.TLS.Cert, c.TLS.Key, c.TLS.Secret} {
			if filepath.Dir(p) != nd {
				t.Errorf("%s: %s is outside the node directory", id, p)
			}
		}
		caPEM, certPEM, keyPEM, err := tlsutil.LoadFiles(c.TLS.CA, c.TLS.Cert, c.TLS.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tlsutil.ServerConfig(caPEM, certPEM, keyPEM, c.ClusterID); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		sec, err := ReadSecret(c.TLS.Secret)
		if err != nil || len(sec) != SecretSize {
			t.Fatalf("%s: secret %d bytes, %v", id, len(sec), err)
		}
		// The node.yaml does not spell out absolute paths.
		b, _ := os.ReadFile(l.NodeConfigs[id])
		if strings.Contains(string(b), dir) {
			t.Errorf("%s: node.yaml holds absolute paths:\n%s", id, b)
		}
	}
	if _, err := os.Stat(filepath.Join(l.NodeDir("n1"), FileCAKey)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the CA key was copied into a node directory")
	}
	ca, err := tlsutil.LoadCA(l.CACert, l.CAKey)
	if err != nil || ca.ClusterID != l.ClusterID {
		t.Fatalf("LoadCA: %v", err)
	}

	// LoadLayout finds the same thing.
	l2, err := LoadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l2.ClusterID != l.ClusterID || !slices.Equal(l2.NodeIDs, l.NodeIDs) || l2.NodeConfigs["w1"] != l.NodeConfigs["w1"] || l2.CAKey != l.CAKey {
		t.Fatalf("LoadLayout %+v, want %+v", l2, l)
	}

	// A second Generate is refused and changes nothing.
	before, _ := os.ReadFile(l.CAKey)
	s := spec(dir)
	s.ClusterID = "other"
	_, err = Generate(s)
	if !errors.Is(err, ErrClusterExists) || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("second Generate: %v", err)
	}
	after, _ := os.ReadFile(l.CAKey)
	if string(before) != string(after) {
		t.Fatal("second Generate changed ca.key")
	}
}

func TestGenerateIntoExistingEmptyDir(t *testing.T) {
	dir := t.TempDir()
	s := InitSpec{Dir: dir, ClusterID: "dev", ClientName: "laptop", Nodes: []NodeSpec{{ID: "n1", RaftPort: 7001, AdminPort: 7002}}}
	l, err := Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	if l.ClusterID != "dev" {
		t.Fatal(l.ClusterID)
	}
	cl, err := LoadClient(l.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM, _, err := tlsutil.LoadFiles(cl.TLS.CA, cl.TLS.Cert, cl.TLS.Key)
	if err != nil || !strings.Contains(string(certPEM), "CERTIFICATE") {
		t.Fatal(err)
	}
}

func TestGenerateRefusesBadShape(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	s := spec(dir)
	s.Nodes = s.Nodes[:2] // two data nodes
	_, err := Generate(s)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "witness") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a refused Generate left files behind")
	}
	s.Nodes = nil
	if _, err := Generate(s); err == nil {
		t.Fatal("no nodes accepted")
	}
}

func TestLoadLayoutMissing(t *testing.T) {
	_, err := LoadLayout(t.TempDir())
	if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), "keel init") {
		t.Fatalf("got %v", err)
	}
}
