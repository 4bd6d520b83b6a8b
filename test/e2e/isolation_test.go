package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

// TestForeignNodeRefused checks that clusters stay apart: another cluster's
// certificates are refused on the raft and admin ports, a node of another
// cluster that lists this cluster's raft addresses as its peers neither
// joins nor disturbs it, and a data directory of another cluster is refused
// by keel serve.
func TestForeignNodeRefused(t *testing.T) {
	// Cluster A's leader and term must not move: steady timings keep a
	// loaded test machine from moving them on its own.
	a := startCluster(t, Shape{Data: 3, Steady: true})
	b := initCluster(t, Shape{Data: 3, Fast: true})
	if a.ID == b.ID {
		t.Fatalf("two keel init runs made the same cluster id %s", a.ID)
	}
	before := a.Status()
	if before.Leader == "" || !before.Healthy {
		t.Fatalf("cluster A is not healthy before the test: %+v", before)
	}

	// 1. TLS: B's client and node certificates, on A's admin and raft ports.
	// A's own client certificate is the control: it is not refused.
	own := loadCert(t, filepath.Join(a.Dir, "client.crt"), filepath.Join(a.Dir, "client.key"))
	foreign := map[string]tls.Certificate{
		"client": loadCert(t, filepath.Join(b.Dir, "client.crt"), filepath.Join(b.Dir, "client.key")),
		"node":   loadCert(t, filepath.Join(b.Member("n1").Dir, "node.crt"), filepath.Join(b.Member("n1").Dir, "node.key")),
	}
	target := a.Member("n2")
	for port, addr := range map[string]string{"admin": target.AdminAddr, "raft": target.RaftAddr} {
		for kind, cert := range foreign {
			if err := tlsRefusal(addr, cert); err != nil {
				t.Errorf("A's %s port with B's %s certificate: %v", port, kind, err)
			}
		}
		if err := tlsRefusal(addr, own); err == nil {
			t.Errorf("A's %s port refused A's own client certificate", port)
		}
	}

	// 2. B's client configuration pointed at A's nodes reaches none of them
	// (it does not trust A's server certificates either).
	bcc, err := config.LoadClient(b.Layout.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := config.LoadClient(a.Layout.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	bcc.Peers = acc.Peers
	fc, err := cluster.NewClient(bcc)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	fst := fc.Status(ctx, 3*time.Second)
	cancel()
	for _, m := range fst.Nodes {
		if m.Reachable {
			t.Errorf("B's client got the status of A's node %s", m.ID)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = fc.CreateVolume(ctx, "intruder", 1<<20)
	cancel()
	if err == nil {
		t.Errorf("B's client created a volume in cluster A")
	}

	// 3. B's n1, configured with A's n2 and n3 raft addresses as its peers,
	// campaigns against A for many election timeouts.
	intruder := b.Member("n1")
	editYAML(t, intruder.Config, func(doc map[string]any) {
		peers := doc["peers"].([]any)
		for _, p := range peers {
			pm := p.(map[string]any)
			switch pm["id"] {
			case "n2":
				pm["raft_addr"] = a.Member("n2").RaftAddr
			case "n3":
				pm["raft_addr"] = a.Member("n3").RaftAddr
			}
		}
	})
	intruder.Start()
	time.Sleep(5 * time.Second) // 10 of its election timeouts
	ist, err := intruder.Status()
	if err != nil {
		t.Fatalf("status of B's n1: %v", err)
	}
	if ist.Raft.State == "leader" || ist.Raft.LeaderID != "" {
		t.Errorf("B's n1 found a quorum among A's nodes: state %s, leader %q", ist.Raft.State, ist.Raft.LeaderID)
	}
	t.Logf("B's n1 after 5s pointed at A: state %s, term %d", ist.Raft.State, ist.Raft.Term)
	after := a.Status()
	if after.Leader != before.Leader || after.Term != before.Term || !after.Healthy {
		t.Errorf("cluster A was disturbed: leader %q term %d healthy %v before, leader %q term %d healthy %v after",
			before.Leader, before.Term, before.Healthy, after.Leader, after.Term, after.Healthy)
	}
	for _, m := range after.Nodes {
		if m.Node == nil {
			continue
		}
		if m.Node.Raft.Term != before.Term {
			t.Errorf("A's %s moved to term %d (was %d): it heard B's candidate", m.ID, m.Node.Raft.Term, before.Term)
		}
		for peer := range m.Node.Raft.SentBytes {
			if peer != "n1" && peer != "n2" && peer != "n3" {
				t.Errorf("A's %s reports a foreign peer %q", m.ID, peer)
			}
		}
	}
	for _, v := range after.Volumes {
		if v.Name == "intruder" {
			t.Errorf("cluster A holds volume %q made by B's client", v.Name)
		}
	}
	intruder.Stop()

	// 4. A data directory of cluster A under one of B's nodes.
	victim := b.Member("n2")
	src := a.Member("n3")
	src.Stop()
	copyDir(t, filepath.Join(src.Dir, config.NodeDataDir), filepath.Join(victim.Dir, config.NodeDataDir))
	r := runKeel(t, 30*time.Second, "serve", "--config", victim.Config)
	if r.Code == 0 || r.Code == -1 {
		t.Fatalf("keel serve on cluster A's data directory: exit %d (want a non-zero exit); stderr:\n%s", r.Code, r.Stderr)
	}
	for _, id := range []string{a.ID, b.ID} {
		if !strings.Contains(r.Stderr, id) {
			t.Errorf("keel serve's error does not name cluster %s:\n%s", id, r.Stderr)
		}
	}
	if listening(victim.AdminAddr) || listening(victim.RaftAddr) {
		t.Errorf("something listens on %s's ports after keel serve refused its data directory", victim.ID)
	}
	t.Logf("keel serve refused the foreign data directory: %s", strings.TrimSpace(r.Stderr))
}

func loadCert(t *testing.T, certFile, keyFile string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsRefusal connects to addr presenting cert (without checking the server)
// and returns nil if the server refused the certificate with a TLS alert, or
// an error saying what happened instead.
func tlsRefusal(addr string, cert tls.Certificate) error {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second},
		Config: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), "tls:") {
			return nil // refused during the handshake
		}
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// With TLS 1.3 the server checks the client certificate after the
	// client considers the handshake done: its verdict arrives on the first
	// read. A server that accepted us waits for a request instead.
	_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	_, err = conn.Read(make([]byte, 64))
	var ne net.Error
	switch {
	case err == nil:
		return errors.New("the server sent data: the certificate was accepted")
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("the server kept the connection open: the certificate was accepted")
	case strings.Contains(err.Error(), "tls:"):
		return nil
	}
	return fmt.Errorf("connection ended without a TLS alert: %w", err)
}

// copyDir copies a directory tree (regular files and directories).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}
