package tlsutil

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair is a certificate and its key in PEM.
type pair struct{ cert, key []byte }

func newCA(t *testing.T, cluster string) *CA {
	t.Helper()
	ca, err := NewCA(cluster)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func nodePair(t *testing.T, ca *CA, id string) pair {
	t.Helper()
	c, k, err := ca.IssueNode(id, []string{"10.0.0.1", "node.example"})
	if err != nil {
		t.Fatal(err)
	}
	return pair{c, k}
}

func clientPair(t *testing.T, ca *CA, name string) pair {
	t.Helper()
	c, k, err := ca.IssueClient(name)
	if err != nil {
		t.Fatal(err)
	}
	return pair{c, k}
}

// handshake runs a server with srv and a client with cli over 127.0.0.1 and
// exchanges one message, returning each side's error and, on success, the
// identity the server saw.
func handshake(t *testing.T, srv, cli *tls.Config) (clientErr, serverErr error, seen Identity) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err error
		id  Identity
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		id, err := PeerIdentity(tc.ConnectionState())
		if err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- result{err: err, id: id}
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cli)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		_, err = io.ReadFull(c, buf)
		if err == nil && string(buf) != "ok" {
			err = errors.New("unexpected reply " + string(buf))
		}
		c.Close()
	}
	r := <-done
	return err, r.err, r.id
}

func mustServer(t *testing.T, ca *CA, p pair, cluster string) *tls.Config {
	t.Helper()
	c, err := ServerConfig(ca.CertPEM(), p.cert, p.key, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustClient(t *testing.T, ca *CA, p pair, cluster string) *tls.Config {
	t.Helper()
	c, err := ClientConfig(ca.CertPEM(), p.cert, p.key, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandshakeClientToNode(t *testing.T) {
	ca := newCA(t, "c1")
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	cli := mustClient(t, ca, clientPair(t, ca, "alice"), "c1")
	cerr, serr, id := handshake(t, srv, cli)
	if cerr != nil || serr != nil {
		t.Fatalf("client err %v, server err %v", cerr, serr)
	}
	if want := (Identity{ClusterID: "c1", Kind: KindClient, Name: "alice"}); id != want {
		t.Fatalf("server saw %+v, want %+v", id, want)
	}
}

func TestNodeCertWorksAsClient(t *testing.T) {
	ca := newCA(t, "c1")
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	cli := mustClient(t, ca, nodePair(t, ca, "n2"), "c1")
	cerr, serr, id := handshake(t, srv, cli)
	if cerr != nil || serr != nil {
		t.Fatalf("client err %v, server err %v", cerr, serr)
	}
	if id.Kind != KindNode || id.Name != "n2" {
		t.Fatalf("server saw %+v", id)
	}
}

func TestClientFromOtherCARefused(t *testing.T) {
	ca := newCA(t, "c1")
	other := newCA(t, "c1") // same id, different key: a second `keel init`
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	// The client trusts the right CA but holds a certificate of the other.
	p := clientPair(t, other, "mallory")
	cli, err := ClientConfig(ca.CertPEM(), p.cert, p.key, "c1")
	if err != nil {
		t.Fatal(err)
	}
	cerr, serr, _ := handshake(t, srv, cli)
	if serr == nil || cerr == nil {
		t.Fatalf("handshake succeeded: client err %v, server err %v", cerr, serr)
	}
	if !strings.Contains(serr.Error(), "certificate") {
		t.Fatalf("server error %v does not mention the certificate", serr)
	}
}

func TestServerFromOtherCARefused(t *testing.T) {
	ca := newCA(t, "c1")
	other := newCA(t, "c1")
	srv := mustServer(t, other, nodePair(t, other, "n1"), "c1")
	cli := mustClient(t, ca, clientPair(t, ca, "alice"), "c1")
	cerr, _, _ := handshake(t, srv, cli)
	if !errors.Is(cerr, ErrUntrusted) {
		t.Fatalf("client error %v, want ErrUntrusted", cerr)
	}
}

func TestSameCAOtherClusterRefused(t *testing.T) {
	ca := newCA(t, "c1")
	// The same CA key reused for another cluster id.
	reused := &CA{Cert: ca.Cert, Key: ca.Key, ClusterID: "c2"}

	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	// A client that trusts c1's nodes but presents a c2 certificate.
	cli := mustClient(t, ca, clientPair(t, ca, "alice"), "c1")
	p := clientPair(t, reused, "alice")
	kp, err := tls.X509KeyPair(p.cert, p.key)
	if err != nil {
		t.Fatal(err)
	}
	cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	cerr, serr, _ := handshake(t, srv, cli)
	if cerr == nil {
		t.Fatal("client was not refused")
	}
	if !errors.Is(serr, ErrWrongCluster) {
		t.Fatalf("server error %v, want ErrWrongCluster", serr)
	}
	if !strings.Contains(serr.Error(), `cluster "c2", not "c1"`) || !strings.Contains(serr.Error(), "keel init") {
		t.Fatalf("server error does not explain: %v", serr)
	}

	// And the other way: a node of c2 answering a client of c1.
	srv2 := mustServer(t, ca, nodePair(t, reused, "n1"), "c2")
	cli2 := mustClient(t, ca, clientPair(t, ca, "alice"), "c1")
	cerr, _, _ = handshake(t, srv2, cli2)
	if !errors.Is(cerr, ErrWrongCluster) {
		t.Fatalf("client error %v, want ErrWrongCluster", cerr)
	}
}

func TestClientCertCannotServe(t *testing.T) {
	ca := newCA(t, "c1")
	p := clientPair(t, ca, "alice")
	if _, err := ServerConfig(ca.CertPEM(), p.cert, p.key, "c1"); !errors.Is(err, ErrNotNode) {
		t.Fatalf("ServerConfig with a client certificate: %v, want ErrNotNode", err)
	}
	// Even a server forced to present a client certificate is refused.
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	kp, err := tls.X509KeyPair(p.cert, p.key)
	if err != nil {
		t.Fatal(err)
	}
	srv.Certificates = []tls.Certificate{kp}
	cli := mustClient(t, ca, nodePair(t, ca, "n2"), "c1")
	cerr, _, _ := handshake(t, srv, cli)
	if !errors.Is(cerr, ErrUntrusted) {
		t.Fatalf("client error %v, want ErrUntrusted (no server auth usage)", cerr)
	}
}

func TestConfigsAreTLS13(t *testing.T) {
	ca := newCA(t, "c1")
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	cli := mustClient(t, ca, clientPair(t, ca, "a"), "c1")
	if srv.MinVersion != tls.VersionTLS13 || cli.MinVersion != tls.VersionTLS13 {
		t.Fatal("not TLS 1.3 only")
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("server does not require client certificates")
	}
}

func TestOwnCertOfOtherClusterRejected(t *testing.T) {
	ca := newCA(t, "c1")
	p := nodePair(t, ca, "n1")
	if _, err := ServerConfig(ca.CertPEM(), p.cert, p.key, "c2"); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("got %v, want ErrWrongCluster", err)
	}
	if _, err := ClientConfig([]byte("junk"), p.cert, p.key, "c1"); !errors.Is(err, ErrBadPEM) {
		t.Fatalf("got %v, want ErrBadPEM", err)
	}
}

func TestIdentityOf(t *testing.T) {
	ca := newCA(t, "prod-1")
	p := nodePair(t, ca, "n1")
	cert, err := parseCert(p.cert)
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityOf(cert)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{"prod-1", KindNode, "n1"}); id != want {
		t.Fatalf("got %+v, want %+v", id, want)
	}
	if id.String() != "keel://prod-1/node/n1" {
		t.Fatalf("URI %s", id)
	}
	if _, err := IdentityOf(ca.Cert); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("CA cert identity: %v", err)
	}
	hasIP := false
	for _, ip := range cert.IPAddresses {
		if ip.String() == "127.0.0.1" {
			hasIP = true
		}
	}
	if !hasIP || !strings.Contains(strings.Join(cert.DNSNames, ","), "localhost") ||
		!strings.Contains(strings.Join(cert.DNSNames, ","), "node.example") || len(cert.IPAddresses) != 2 {
		t.Fatalf("SANs: %v %v", cert.IPAddresses, cert.DNSNames)
	}
}

func TestBadNames(t *testing.T) {
	if _, err := NewCA("Bad Cluster"); !errors.Is(err, ErrBadName) {
		t.Fatalf("NewCA: %v", err)
	}
	ca := newCA(t, "c1")
	if _, _, err := ca.IssueNode("N/1", nil); !errors.Is(err, ErrBadName) {
		t.Fatalf("IssueNode: %v", err)
	}
	if _, _, err := ca.IssueClient(""); !errors.Is(err, ErrBadName) {
		t.Fatalf("IssueClient: %v", err)
	}
}

func TestFilesAndLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "c1")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	p := nodePair(t, ca, "n1")
	files := map[string][]byte{"ca.crt": ca.CertPEM(), "ca.key": keyPEM, "node.crt": p.cert, "node.key": p.key}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := WriteFile0600(path, data); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", name, fi.Mode())
		}
	}
	// Overwrite keeps 0600 and leaves no temporary files behind.
	if err := WriteFile0600(filepath.Join(dir, "ca.crt"), ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(files) {
		t.Fatalf("%d entries in dir, want %d", len(ents), len(files))
	}

	loaded, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ClusterID != "c1" || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("loaded %q", loaded.ClusterID)
	}
	// The loaded CA issues certificates the original trusts.
	srv := mustServer(t, ca, p, "c1")
	cli := mustClient(t, ca, clientPair(t, loaded, "bob"), "c1")
	if cerr, serr, _ := handshake(t, srv, cli); cerr != nil || serr != nil {
		t.Fatalf("client err %v, server err %v", cerr, serr)
	}
	if _, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.key")); !errors.Is(err, ErrBadPEM) {
		t.Fatalf("LoadCA with the wrong key: %v", err)
	}

	caPEM, certPEM, kPEM, err := LoadFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
	if err != nil || len(caPEM) == 0 || len(certPEM) == 0 || len(kPEM) == 0 {
		t.Fatalf("LoadFiles: %v", err)
	}
	missing := filepath.Join(dir, "nope.key")
	if _, _, _, err := LoadFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFiles error does not name the file: %v", err)
	}
}
