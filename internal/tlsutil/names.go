package tlsutil

import (
	"fmt"
	"regexp"
)

var (
	clusterIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	nodeIDRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	clientNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// CheckClusterID reports whether id can be a cluster id: 1-63 characters of
// lower-case letters, digits and '-', starting with a letter or digit.
func CheckClusterID(id string) error {
	if !clusterIDRe.MatchString(id) {
		return fmt.Errorf("%w: cluster id %q: use 1-63 lower-case letters, digits and '-', starting with a letter or digit", ErrBadName, id)
	}
	return nil
}

// CheckNodeID reports whether id can be a node id: 1-32 characters of
// lower-case letters, digits and '-', starting with a letter or digit.
func CheckNodeID(id string) error {
	if !nodeIDRe.MatchString(id) {
		return fmt.Errorf("%w: node id %q: use 1-32 lower-case letters, digits and '-', starting with a letter or digit", ErrBadName, id)
	}
	return nil
}

// CheckClientName reports whether name can be a client name: 1-64
// characters of letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func CheckClientName(name string) error {
	if !clientNameRe.MatchString(name) {
		return fmt.Errorf("%w: client name %q: use 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit", ErrBadName, name)
	}
	return nil
}
