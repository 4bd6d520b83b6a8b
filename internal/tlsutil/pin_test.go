package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The join configuration: a joiner that pins the right CA gets through
// without a certificate; a wrong pin is refused; a connection without the
// join server name still needs a cluster certificate.
func TestJoinPinning(t *testing.T) {
	ca := newCA(t, "c1")
	srv := mustServer(t, ca, nodePair(t, ca, "n1"), "c1")
	if err := WithJoin(srv, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	fp, err := CAFingerprint(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	var got *x509.Certificate
	cerr, serr, _ := handshakeNoID(t, srv, PinnedConfig(fp, &got))
	if cerr != nil || serr != nil {
		t.Fatalf("pinned join: client %v server %v", cerr, serr)
	}
	if got == nil || !got.Equal(ca.Cert) {
		t.Fatal("the pinned CA was not returned")
	}
	other := newCA(t, "c1")
	ofp, _ := CAFingerprint(other.CertPEM())
	cerr, _, _ = handshakeNoID(t, srv, PinnedConfig(ofp, nil))
	if !errors.Is(cerr, ErrUntrusted) || !strings.Contains(cerr.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", cerr)
	}
	// Without the join name, no certificate: refused by the server.
	plain := PinnedConfig(fp, nil)
	plain.ServerName = ""
	if _, serr, _ = handshakeNoID(t, srv, plain); serr == nil {
		t.Fatal("a connection without certificate or join name was accepted")
	}
}

// handshakeNoID is handshake for clients that may have no certificate:
// the server completes the handshake and writes, without asking who it is.
func handshakeNoID(t *testing.T, srv, cli *tls.Config) (clientErr, serverErr error, _ Identity) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			done <- err
			return
		}
		_, err = c.Write([]byte("ok"))
		done <- err
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cli)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		_, err = io.ReadFull(c, buf)
		c.Close()
	}
	return err, <-done, Identity{}
}
