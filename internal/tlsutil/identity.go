package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Kinds of identity.
const (
	KindNode   = "node"
	KindClient = "client"
)

// Identity is who a certificate belongs to, read from its keel:// URI SAN.
type Identity struct {
	ClusterID string
	Kind      string // KindNode or KindClient
	Name      string // node id or client name
}

// URI returns keel://<cluster>/<kind>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "keel", Host: id.ClusterID, Path: "/" + id.Kind + "/" + id.Name}
}

// String returns the URI form.
func (id Identity) String() string { return id.URI().String() }

// IdentityOf returns the keel identity in cert's URI SANs. It does not check
// the signature; use it on verified chains only.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != "keel" {
			continue
		}
		id, err := parseIdentity(u)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no keel:// URI: issue it with `keel init` or the cluster's CA", ErrNoIdentity, cert.Subject.CommonName)
	case 1:
		return found[0], nil
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d keel:// URIs, want one", ErrNoIdentity, cert.Subject.CommonName, len(found))
	}
}

func parseIdentity(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: URI %q %s", ErrNoIdentity, u.String(), why)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return bad("has parts a keel identity does not")
	}
	if CheckClusterID(u.Host) != nil {
		return bad("has no valid cluster id")
	}
	kind, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || !strings.HasPrefix(u.Path, "/") {
		return bad("is not keel://<cluster>/<kind>/<name>")
	}
	switch kind {
	case KindNode:
		if CheckNodeID(name) != nil {
			return bad("has an invalid node id")
		}
	case KindClient:
		if CheckClientName(name) != nil {
			return bad("has an invalid client name")
		}
	default:
		return bad("has unknown kind " + kind)
	}
	return Identity{ClusterID: u.Host, Kind: kind, Name: name}, nil
}

// PeerIdentity returns the identity of the peer of a verified connection
// made with ServerConfig or ClientConfig.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: the peer sent no certificate", ErrNoIdentity)
	}
	return IdentityOf(cs.PeerCertificates[0])
}

// checkCluster returns ErrWrongCluster unless id belongs to clusterID.
func checkCluster(id Identity, clusterID string) error {
	if id.ClusterID != clusterID {
		return fmt.Errorf("%w: the peer's certificate (%s) belongs to cluster %q, not %q: was it made by another `keel init`? Use the certificates from this cluster's init directory", ErrWrongCluster, id, id.ClusterID, clusterID)
	}
	return nil
}
