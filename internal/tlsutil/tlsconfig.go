package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// ServerConfig returns the TLS configuration of a node's listener (raft and
// admin API): TLS 1.3 only, a client certificate signed by the cluster CA is
// required, and its keel identity must name clusterID. Both node and client
// certificates are accepted; use PeerIdentity to tell them apart. The
// server's own certificate must be a node certificate of clusterID.
func ServerConfig(caPEM, certPEM, keyPEM []byte, clusterID string) (*tls.Config, error) {
	pool, cert, self, err := parseMaterial(caPEM, certPEM, keyPEM, clusterID)
	if err != nil {
		return nil, err
	}
	if self.Kind != KindNode {
		return nil, fmt.Errorf("%w: cannot serve with %s: a node needs its node certificate (nodes/<id>/node.crt from `keel init`)", ErrNotNode, self)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			// The chain has already been verified against pool, for client auth.
			id, err := PeerIdentity(cs)
			if err != nil {
				return err
			}
			return checkCluster(id, clusterID)
		},
	}, nil
}

// ClientConfig returns the TLS configuration for dialing a node of
// clusterID: TLS 1.3 only, presenting certPEM (a node or client
// certificate). The server's chain is verified against the cluster CA for
// server auth, and its identity must be a node of clusterID. Host names are
// not checked (nodes are dialed by IP:port); the keel identity takes their
// place.
func ClientConfig(caPEM, certPEM, keyPEM []byte, clusterID string) (*tls.Config, error) {
	pool, cert, _, err := parseMaterial(caPEM, certPEM, keyPEM, clusterID)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		// Always present our certificate, even if the server asks for
		// other CAs, so that it can say what is wrong with it.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		// The standard verification also checks the host name, which node
		// certificates need not match; VerifyConnection does the full chain
		// verification instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, pool, clusterID)
		},
	}, nil
}

// verifyServer verifies the server's chain against pool for server auth and
// checks it is a node of clusterID.
func verifyServer(cs tls.ConnectionState, pool *x509.CertPool, clusterID string) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the server sent no certificate", ErrUntrusted)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("%w: server certificate %q: %w: is this address a node of this cluster, and is ca.crt the cluster's?", ErrUntrusted, leaf.Subject.CommonName, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	if err := checkCluster(id, clusterID); err != nil {
		return err
	}
	if id.Kind != KindNode {
		return fmt.Errorf("%w: the server presented %s: only nodes may serve; check the address points at a keel node", ErrNotNode, id)
	}
	return nil
}

// parseMaterial parses the CA pool and key pair and checks our own
// certificate belongs to clusterID.
func parseMaterial(caPEM, certPEM, keyPEM []byte, clusterID string) (*x509.CertPool, tls.Certificate, Identity, error) {
	fail := func(err error) (*x509.CertPool, tls.Certificate, Identity, error) {
		return nil, tls.Certificate{}, Identity{}, err
	}
	if err := CheckClusterID(clusterID); err != nil {
		return fail(err)
	}
	if _, err := parseCert(caPEM); err != nil {
		return fail(fmt.Errorf("tlsutil: CA certificate: %w", err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fail(fmt.Errorf("%w: CA certificate could not be parsed", ErrBadPEM))
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fail(fmt.Errorf("%w: certificate and key: %w: are they a matching pair from `keel init`?", ErrBadPEM, err))
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fail(fmt.Errorf("%w: certificate: %w", ErrBadPEM, err))
		}
		cert.Leaf = leaf
	}
	self, err := IdentityOf(leaf)
	if err != nil {
		return fail(err)
	}
	if self.ClusterID != clusterID {
		return fail(fmt.Errorf("%w: our own certificate (%s) belongs to cluster %q, but the configuration says %q: use the certificates and config made by the same `keel init`", ErrWrongCluster, self, self.ClusterID, clusterID))
	}
	return pool, cert, self, nil
}
