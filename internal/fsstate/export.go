package fsstate

import (
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
)

// Squash says which callers' credentials an export maps to its anonymous
// user and group (NFS root_squash, no_root_squash, all_squash).
type Squash uint8

const (
	SquashRoot Squash = 0 // uid 0 becomes AnonUID, gid 0 AnonGID (the default)
	SquashNone Squash = 1 // credentials are used as sent
	SquashAll  Squash = 2 // every caller becomes AnonUID/AnonGID
)

// String returns the exports(5) option name of the squash mode.
func (s Squash) String() string {
	switch s {
	case SquashRoot:
		return "root_squash"
	case SquashNone:
		return "no_root_squash"
	case SquashAll:
		return "all_squash"
	}
	return "squash(" + strconv.Itoa(int(s)) + ")"
}

// AnonID is the default anonymous uid and gid of an export (nobody/nogroup).
const AnonID uint32 = 65534

// MaxExportClients is the most client networks one export may list.
const MaxExportClients = 128

// Export is a volume's NFS export settings, the equivalent of one
// /etc/exports line. They are part of the replicated volume record, so every
// node serves a volume with the same settings.
//
// AnonUID and AnonGID are used as given: a zero value means uid/gid 0, so
// start from DefaultExport rather than from Export{}.
type Export struct {
	// Clients lists the networks allowed to mount the volume, as CIDR
	// prefixes ("10.0.0.0/8", "127.0.0.1/32", "::1/128"). An empty list
	// lets no client mount it. Stored in canonical form: host bits cleared,
	// IPv4-mapped IPv6 prefixes written as IPv4.
	Clients  []string
	ReadOnly bool
	Squash   Squash
	AnonUID  uint32
	AnonGID  uint32
}

// DefaultExport returns the export a new volume gets: loopback clients only
// ("127.0.0.0/8", "::1/128"), read-write, root_squash, anonymous 65534:65534.
func DefaultExport() Export {
	return Export{
		Clients: []string{"127.0.0.0/8", "::1/128"},
		Squash:  SquashRoot,
		AnonUID: AnonID,
		AnonGID: AnonID,
	}
}

// Allows reports whether a client at addr may mount the export: whether
// addr (IPv4-mapped IPv6 addresses taken as IPv4, any zone ignored) lies in
// one of the Clients networks.
func (e Export) Allows(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, c := range e.Clients {
		p, err := parseClient(c)
		if err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// Validate reports whether SetExport would accept e: every client a valid
// CIDR prefix, at most MaxExportClients of them, and a known Squash mode.
func (e Export) Validate() error {
	_, err := canonicalExport(e)
	return err
}

// parseClient parses one Clients entry into its canonical prefix.
func parseClient(c string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// canonicalExport checks e and returns it with its clients in canonical form,
// in a slice of its own (nil when empty).
func canonicalExport(e Export) (Export, error) {
	if e.Squash > SquashAll {
		return Export{}, fmt.Errorf("fsstate: export: unknown squash mode %d", e.Squash)
	}
	if len(e.Clients) > MaxExportClients {
		return Export{}, fmt.Errorf("fsstate: export: %d clients, at most %d allowed",
			len(e.Clients), MaxExportClients)
	}
	out := e
	out.Clients = nil
	for _, c := range e.Clients {
		p, err := parseClient(c)
		if err != nil {
			return Export{}, fmt.Errorf("fsstate: export client %q: %w", c, err)
		}
		out.Clients = append(out.Clients, p.String())
	}
	return out, nil
}

// opSetExport replaces the export settings of volume VolName with *Export.
func opSetExport(t *txn, c *Command) (Result, error) {
	if !privileged(c.Cred) {
		return Result{}, syscall.EPERM
	}
	if c.Export == nil {
		return Result{}, syscall.EINVAL
	}
	e, err := canonicalExport(*c.Export)
	if err != nil {
		return Result{}, syscall.EINVAL
	}
	v, err := t.volumeByName(c.VolName)
	if err != nil {
		return Result{}, err
	}
	v.Export = e
	t.putVolume(v)
	return Result{Volume: v.Volume}, nil
}
