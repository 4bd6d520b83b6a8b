package tlsutil

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// JoinServerName is the TLS server name (SNI) a joining machine sends. A
// node's listener answers it with the join configuration (JoinServer): no
// client certificate is asked for, and the CA certificate is sent with the
// node's so that the joiner can check it against the fingerprint in its
// token. Every other connection keeps requiring a cluster certificate.
const JoinServerName = "join.keel.invalid"

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// CAFingerprint returns the fingerprint of the first certificate in caPEM.
func CAFingerprint(caPEM []byte) (string, error) {
	c, err := parseCert(caPEM)
	if err != nil {
		return "", err
	}
	return Fingerprint(c), nil
}

// WithJoin makes server (a ServerConfig) answer connections that ask for
// JoinServerName without a client certificate, presenting the node's
// certificate followed by the CA's. Handlers must then allow such
// connections (no peer certificate) only the join request itself.
func WithJoin(server *tls.Config, caPEM []byte) error {
	ca, err := parseCert(caPEM)
	if err != nil {
		return fmt.Errorf("tlsutil: CA certificate: %w", err)
	}
	if len(server.Certificates) != 1 {
		return fmt.Errorf("tlsutil: join: the server configuration has %d certificates, want 1", len(server.Certificates))
	}
	chain := server.Certificates[0]
	chain.Certificate = append(append([][]byte{}, chain.Certificate...), ca.Raw)
	join := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{chain},
		ClientAuth:   tls.NoClientCert,
		NextProtos:   []string{"http/1.1"},
	}
	server.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello.ServerName == JoinServerName {
			return join, nil
		}
		return nil, nil
	}
	return nil
}

// PinnedConfig is the TLS configuration of a machine that joins a cluster
// knowing only the fingerprint of its CA (from a join token): the server
// must present a node certificate chained to a CA certificate with that
// SHA-256 fingerprint. The CA certificate it verified is stored in *ca.
func PinnedConfig(fingerprint string, ca **x509.Certificate) *tls.Config {
	want, _ := hex.DecodeString(strings.ToLower(fingerprint))
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         JoinServerName,
		NextProtos:         []string{"http/1.1"},
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) < 2 {
				return fmt.Errorf("%w: the server did not send its CA certificate: is this address a keel node's admin port (7501)?", ErrUntrusted)
			}
			var root *x509.Certificate
			for _, c := range cs.PeerCertificates[1:] {
				sum := sha256.Sum256(c.Raw)
				if c.IsCA && len(want) == len(sum) && bytes.Equal(sum[:], want) {
					root = c
				}
			}
			if root == nil {
				return fmt.Errorf("%w: the server's CA does not have the fingerprint in the token (%s…): this is not the cluster the token was made for, or someone is in between", ErrUntrusted, fingerprint[:min(16, len(fingerprint))])
			}
			id, ok := strings.CutPrefix(root.Subject.CommonName, "keel cluster ")
			if !ok {
				return fmt.Errorf("%w: the pinned CA %q is not a keel cluster CA", ErrUntrusted, root.Subject.CommonName)
			}
			pool := x509.NewCertPool()
			pool.AddCert(root)
			if err := verifyServer(tls.ConnectionState{PeerCertificates: cs.PeerCertificates[:1]}, pool, id); err != nil {
				return err
			}
			if ca != nil {
				*ca = root
			}
			return nil
		},
	}
}
