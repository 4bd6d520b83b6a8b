// Package tlsutil owns keel's cluster certificate authority, the certificates
// it issues to nodes and clients, and the mutually authenticated TLS
// configurations built from them.
//
// Every certificate names who it belongs to in a URI SAN:
//
//	keel://<cluster-id>/node/<node-id>
//	keel://<cluster-id>/client/<name>
//
// A connection is accepted only if the peer's chain verifies against the
// cluster CA and that URI names the expected cluster, so certificates of
// another cluster are refused even if it happened to share the CA.
package tlsutil

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these with %w
// and add what to do about it.
var (
	// ErrWrongCluster: a certificate belongs to another cluster.
	ErrWrongCluster = errors.New("tlsutil: certificate of another cluster")
	// ErrNoIdentity: a certificate carries no (or a malformed) keel:// URI.
	ErrNoIdentity = errors.New("tlsutil: certificate has no keel identity")
	// ErrNotNode: a certificate that is not a node's was used where only a
	// node may appear (serving, or answering a client).
	ErrNotNode = errors.New("tlsutil: certificate is not a node certificate")
	// ErrUntrusted: a certificate chain does not verify against the cluster CA.
	ErrUntrusted = errors.New("tlsutil: certificate not signed by the cluster CA")
	// ErrBadPEM: PEM input holds no usable certificate or key.
	ErrBadPEM = errors.New("tlsutil: bad PEM data")
	// ErrBadName: a cluster id, node id or client name that cannot be put in
	// a certificate.
	ErrBadName = errors.New("tlsutil: bad name")
)
