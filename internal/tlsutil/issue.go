package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"
)

// IssueNode issues a certificate for node nodeID, usable both to serve and
// to dial (server and client auth), valid 5 years. hosts are the IP
// addresses or DNS names the node is reached at; 127.0.0.1 and localhost are
// always included.
func (ca *CA) IssueNode(nodeID string, hosts []string) (certPEM, keyPEM []byte, err error) {
	if err := CheckNodeID(nodeID); err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "node " + nodeID},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		default:
			if !slices.Contains(tmpl.DNSNames, h) {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	return ca.issue(tmpl, "node", nodeID)
}

// IssueClient issues a client-only certificate for name, valid 5 years. It
// cannot serve: clients refuse a server presenting it.
func (ca *CA) IssueClient(name string) (certPEM, keyPEM []byte, err error) {
	if err := CheckClientName(name); err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "client " + name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, "client", name)
}

// issue completes tmpl with the common fields and the identity URI, signs it
// with a fresh P-256 key and returns both in PEM.
func (ca *CA) issue(tmpl *x509.Certificate, kind, name string) (certPEM, keyPEM []byte, err error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, nil, errors.New("tlsutil: issue certificate: the CA has no certificate or key loaded")
	}
	if err := CheckClusterID(ca.ClusterID); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: generate %s key: %w", kind, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.Subject.Organization = []string{"keel cluster " + ca.ClusterID}
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.URIs = []*url.URL{Identity{ClusterID: ca.ClusterID, Kind: kind, Name: name}.URI()}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: sign %s certificate for %q: %w", kind, name, err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}
