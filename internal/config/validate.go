package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"keel/internal/tlsutil"
)

// MaxPeers is the largest cluster a config may describe.
const MaxPeers = 7

// ErrInvalid matches (errors.Is) every FieldErrors.
var ErrInvalid = errors.New("config: invalid configuration")

// FieldError is one problem with one field, named by its YAML path
// (e.g. "node.raft_addr", "peers[1].id").
type FieldError struct {
	Field   string
	Value   string // the offending value, if any
	Problem string // what is wrong, e.g. "is not host:port"
	Fix     string // what to do, e.g. "set it to e.g. 10.0.0.1:7001"
}

// Error formats the problem as `field: "value" problem; fix`.
func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Field)
	b.WriteString(": ")
	if e.Value != "" {
		fmt.Fprintf(&b, "%q ", e.Value)
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// FieldErrors is every problem Validate found, in file order.
type FieldErrors []FieldError

// Error lists the problems one per line.
func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (es FieldErrors) Is(target error) bool { return target == ErrInvalid }

// Fields returns the names of the fields in error.
func (es FieldErrors) Fields() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Field
	}
	return out
}

// collector gathers FieldErrors.
type collector struct{ errs FieldErrors }

func (c *collector) add(field, value, problem, fix string) {
	c.errs = append(c.errs, FieldError{Field: field, Value: value, Problem: problem, Fix: fix})
}

func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// Validate checks the whole node config and returns a FieldErrors listing
// every problem, or nil.
func (c *Config) Validate() error {
	var v collector
	v.clusterID(c.ClusterID)

	// This node.
	v.nodeID("node.id", c.Node.ID)
	v.role("node.role", c.Node.Role)
	if c.Node.DataDir == "" {
		v.add("node.data_dir", "", "is not set", "set it to the directory for this node's data, e.g. /var/lib/keel")
	}
	raftOK := v.addr("node.raft_addr", c.Node.RaftAddr, "10.0.0.1:7001")
	adminOK := v.addr("node.admin_addr", c.Node.AdminAddr, "10.0.0.1:7002")
	if raftOK && adminOK && normAddr(c.Node.RaftAddr) == normAddr(c.Node.AdminAddr) {
		v.add("node.admin_addr", c.Node.AdminAddr, "is the same as node.raft_addr",
			"give the admin API its own port, e.g. the raft port + 1")
	}

	if c.Node.NFSAddr != "" {
		if c.Node.Role == RoleWitness {
			v.add("node.nfs_addr", c.Node.NFSAddr, "is set on a witness, which holds no files", "remove nfs_addr from the witness")
		} else if v.addr("node.nfs_addr", c.Node.NFSAddr, "10.0.0.1:2049") &&
			(normAddr(c.Node.NFSAddr) == normAddr(c.Node.RaftAddr) || normAddr(c.Node.NFSAddr) == normAddr(c.Node.AdminAddr)) {
			v.add("node.nfs_addr", c.Node.NFSAddr, "is the same as the raft or admin address", "give NFS its own port, e.g. 2049")
		}
	}
	if c.Node.PortmapAddr != "" {
		v.addr("node.portmap_addr", c.Node.PortmapAddr, "0.0.0.0:111")
	}
	if c.Node.MountAddr != "" {
		if c.Node.NFSAddr == "" {
			v.add("node.mount_addr", c.Node.MountAddr, "is set without nfs_addr", "set nfs_addr too, or remove mount_addr")
		} else if v.addr("node.mount_addr", c.Node.MountAddr, "10.0.0.1:20048") && normAddr(c.Node.MountAddr) == normAddr(c.Node.NFSAddr) {
			v.add("node.mount_addr", c.Node.MountAddr, "is the same as nfs_addr", "MOUNT is already served on nfs_addr: remove mount_addr, or give it another port")
		}
	}

	v.peers(c.Peers, true)
	if c.Bootstrap && len(c.Peers) > 0 {
		// The shape matters when the cluster is formed; a node that joined
		// (or one whose peers grew by joins) may pass through others.
		v.shape(countRoles(c.Peers))
	}
	v.self(c, raftOK, adminOK)
	v.preferAndResources(c)
	v.backups(c)

	// TLS.
	v.set("tls.ca", c.TLS.CA, "set it to the cluster CA certificate, e.g. ca.crt from `keel init`")
	v.set("tls.cert", c.TLS.Cert, "set it to this node's certificate, e.g. node.crt from `keel init`")
	v.set("tls.key", c.TLS.Key, "set it to this node's private key, e.g. node.key from `keel init`")
	v.set("tls.secret", c.TLS.Secret, "set it to the cluster secret file, e.g. secret from `keel init`")

	v.raft(c.Raft)
	v.logSegment(c.Raft.LogSegmentSize)
	if m := c.Node.MinFreeSpace; m != 0 && m < 16<<20 {
		v.add("node.min_free_space", m.String(), "is below the minimum of 16MiB",
			"set it to 16MiB or more (the raft log and the state need room for their own writes), or remove it for the default 256MiB")
	}
	v.nfs(c.NFS)

	// Log.
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", c.Log.Level, "is not a log level", "set it to debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", c.Log.Format, "is not a log format", "set it to text or json")
	}
	return v.err()
}

// Validate checks a client config and returns a FieldErrors listing every
// problem, or nil.
func (c *Client) Validate() error {
	var v collector
	v.clusterID(c.ClusterID)
	v.peers(c.Peers, false)
	v.set("tls.ca", c.TLS.CA, "set it to the cluster CA certificate, e.g. ca.crt from `keel init`")
	v.set("tls.cert", c.TLS.Cert, "set it to the client certificate, e.g. client.crt from `keel init`")
	v.set("tls.key", c.TLS.Key, "set it to the client's private key, e.g. client.key from `keel init`")
	return v.err()
}

func (v *collector) set(field, value, fix string) {
	if value == "" {
		v.add(field, "", "is not set", fix)
	}
}

func (v *collector) clusterID(id string) {
	const fix = "copy cluster_id from the configs `keel init` made for this cluster"
	switch {
	case id == "":
		v.add("cluster_id", "", "is not set", fix)
	case tlsutil.CheckClusterID(id) != nil:
		v.add("cluster_id", id, "is not a cluster id (1-63 lower-case letters, digits and '-')", fix)
	}
}

func (v *collector) nodeID(field, id string) {
	switch {
	case id == "":
		v.add(field, "", "is not set", "set it to this node's id, e.g. n1")
	case tlsutil.CheckNodeID(id) != nil:
		v.add(field, id, "is not a node id", "use 1-32 lower-case letters, digits and '-', starting with a letter or digit, e.g. n1")
	}
}

// role checks a node role.
func (v *collector) role(field, role string) {
	switch role {
	case RoleData, RoleWitness:
	case "":
		v.add(field, "", "is not set", "set it to data or witness")
	default:
		v.add(field, role, "is not a role", "set it to data (holds the files) or witness (only votes)")
	}
}

// addr checks a host:port that other machines dial and reports whether it is
// valid.
func (v *collector) addr(field, a, example string) bool {
	fix := "set it to e.g. " + example
	if a == "" {
		v.add(field, "", "is not set", fix)
		return false
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		v.add(field, a, "is not host:port", fix)
		return false
	}
	ok := true
	if host == "" {
		v.add(field, a, "has no host; other machines dial this address", fix+" (this machine's address)")
		ok = false
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		v.add(field, a, "is not an address other machines can dial", fix+" (this machine's address)")
		ok = false
	} else if ip == nil && strings.ContainsAny(host, " /\\@") {
		v.add(field, a, "has an invalid host", fix)
		ok = false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(field, a, "has a port outside 1-65535", fix)
		ok = false
	}
	return ok
}

// normAddr returns a canonical form of a valid host:port for comparisons.
func normAddr(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	n, _ := strconv.Atoi(port)
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(n))
}

// peers checks the member list. For a node config every peer needs a role
// and both addresses and the cluster shape is checked; a client config
// needs only ids and admin addresses.
func (v *collector) peers(peers []Peer, node bool) {
	if len(peers) == 0 {
		fix := "list every member of the cluster with its id, role, raft_addr and admin_addr"
		if node {
			fix += ", this node included"
		}
		v.add("peers", "", "is empty", fix)
		return
	}
	if len(peers) > MaxPeers {
		v.add("peers", strconv.Itoa(len(peers))+" members", fmt.Sprintf("is more than the %d keel supports", MaxPeers),
			"use 3 data nodes, or 2 data nodes and a witness")
	}
	ids := map[string]int{}
	addrs := map[string]string{}
	uniqueAddr := func(field, a string) {
		k := normAddr(a)
		if prev, dup := addrs[k]; dup {
			v.add(field, a, "is also "+prev, "give every raft, admin and NFS address its own host:port (several nodes on one host: `keel init --node ID=HOST:RAFTPORT:ADMINPORT:NFSPORT`)")
			return
		}
		addrs[k] = field
	}
	for i, p := range peers {
		f := fmt.Sprintf("peers[%d].", i)
		v.nodeID(f+"id", p.ID)
		if prev, dup := ids[p.ID]; dup && p.ID != "" {
			v.add(f+"id", p.ID, fmt.Sprintf("is also the id of peers[%d]", prev), "give every member its own id")
		} else {
			ids[p.ID] = i
		}
		if node || p.Role != "" {
			v.role(f+"role", p.Role)
		}
		if (node || p.RaftAddr != "") && v.addr(f+"raft_addr", p.RaftAddr, "10.0.0.1:7001") {
			uniqueAddr(f+"raft_addr", p.RaftAddr)
		}
		if v.addr(f+"admin_addr", p.AdminAddr, "10.0.0.1:7002") {
			uniqueAddr(f+"admin_addr", p.AdminAddr)
		}
		if p.NFSAddr != "" && v.addr(f+"nfs_addr", p.NFSAddr, "10.0.0.1:2049") {
			uniqueAddr(f+"nfs_addr", p.NFSAddr)
		}
	}
}

// countRoles counts the data nodes and witnesses among peers.
func countRoles(peers []Peer) (data, witness int) {
	for _, p := range peers {
		switch p.Role {
		case RoleData:
			data++
		case RoleWitness:
			witness++
		}
	}
	return data, witness
}

// shape checks the mix of data nodes and witnesses. Supported: 1 data node
// (development, no redundancy), 3 data nodes, 2 data nodes + 1 witness;
// larger clusters with at most one witness are accepted too.
func (v *collector) shape(data, witness int) {
	value := fmt.Sprintf("%d data, %d witness", data, witness)
	const shapes = "use 3 data nodes, or 2 data nodes and a witness (1 data node alone is for development)"
	switch {
	case data == 0:
		v.add("peers", value, "has no data node; the files live on data nodes", shapes)
	case witness > 1:
		v.add("peers", value, "has more than one witness", "keep at most one witness: "+shapes)
	case witness == 1 && data < 2:
		v.add("peers", value, "has a witness beside a single data node; it adds nothing, and the loss of either stops the cluster",
			"add a second data node, or remove the witness for a development cluster")
	case data == 2 && witness == 0:
		v.add("peers", value, "has two voters, which cannot survive the loss of either (a majority of 2 is 2)",
			"add a witness (role: witness) or a third data node")
	}
}

// self checks that this node appears among the peers as configured.
// Addresses are compared only where node's own are valid (raftOK, adminOK),
// so that one mistake is reported once.
func (v *collector) self(c *Config, raftOK, adminOK bool) {
	if c.Node.ID == "" || len(c.Peers) == 0 {
		return
	}
	for i, p := range c.Peers {
		if p.ID != c.Node.ID {
			continue
		}
		f := fmt.Sprintf("peers[%d].", i)
		const fix = "make this node's entry in peers match node (on every node's config)"
		if p.Role != c.Node.Role && validRole(p.Role) && validRole(c.Node.Role) {
			v.add(f+"role", p.Role, fmt.Sprintf("differs from node.role %q", c.Node.Role), fix)
		}
		if raftOK && p.RaftAddr != "" && normAddr(p.RaftAddr) != normAddr(c.Node.RaftAddr) {
			v.add(f+"raft_addr", p.RaftAddr, fmt.Sprintf("differs from node.raft_addr %q", c.Node.RaftAddr), fix)
		}
		if adminOK && p.AdminAddr != "" && normAddr(p.AdminAddr) != normAddr(c.Node.AdminAddr) {
			v.add(f+"admin_addr", p.AdminAddr, fmt.Sprintf("differs from node.admin_addr %q", c.Node.AdminAddr), fix)
		}
		return
	}
	v.add("peers", "", fmt.Sprintf("does not list this node (node.id %q)", c.Node.ID),
		"add an entry with this node's id, role, raft_addr and admin_addr, or fix node.id")
}

// raft checks the timings against hashicorp/raft's own limits.
func (v *collector) raft(r Raft) {
	atLeast := func(field string, d Duration, min time.Duration) bool {
		if d.D() < min {
			v.add(field, d.String(), "is below the minimum of "+min.String(),
				"set it to at least "+min.String()+" (default "+defaultOf(field)+")")
			return false
		}
		return true
	}
	hb := atLeast("raft.heartbeat_timeout", r.HeartbeatTimeout, 5*time.Millisecond)
	el := atLeast("raft.election_timeout", r.ElectionTimeout, 5*time.Millisecond)
	ll := atLeast("raft.leader_lease_timeout", r.LeaderLeaseTimeout, 5*time.Millisecond)
	atLeast("raft.commit_timeout", r.CommitTimeout, time.Millisecond)
	atLeast("raft.snapshot_interval", r.SnapshotInterval, 5*time.Millisecond)
	if r.ApplyTimeout <= 0 {
		v.add("raft.apply_timeout", r.ApplyTimeout.String(), "is not positive", "set it to e.g. "+defaultOf("raft.apply_timeout"))
	}
	if hb && el && r.ElectionTimeout < r.HeartbeatTimeout {
		v.add("raft.election_timeout", r.ElectionTimeout.String(),
			fmt.Sprintf("is shorter than raft.heartbeat_timeout (%s)", r.HeartbeatTimeout),
			"set it to at least raft.heartbeat_timeout")
	}
	if hb && ll && r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		v.add("raft.leader_lease_timeout", r.LeaderLeaseTimeout.String(),
			fmt.Sprintf("is longer than raft.heartbeat_timeout (%s), which raft does not allow", r.HeartbeatTimeout),
			"set it to at most raft.heartbeat_timeout, e.g. half of it")
	}
}

// logSegment checks raft.log_segment_size.
func (v *collector) logSegment(s Size) {
	if s != 0 && (s < 1<<20 || s > 1<<30) {
		v.add("raft.log_segment_size", s.String(), "is outside 1MiB to 1GiB",
			"set it between 1MiB and 1GiB, or remove it for the default of 64MiB")
	}
}

// nfs checks the NFS memory bounds.
func (v *collector) nfs(n NFS) {
	budget := uint64(n.MaxInflightBytes)
	if budget == 0 {
		budget = DefaultNFSInflight
	} else if budget < MinNFSInflight {
		v.add("nfs.max_inflight_bytes", n.MaxInflightBytes.String(), "is below the minimum of 4MiB",
			"set it to at least 4MiB, or remove it for the default of 256MiB")
		return
	}
	switch share := uint64(n.MaxConnInflightBytes); {
	case share == 0:
	case share < MinNFSInflight:
		v.add("nfs.max_conn_inflight_bytes", n.MaxConnInflightBytes.String(), "is below the minimum of 4MiB (one 1 MiB call and its reply)",
			"set it to at least 4MiB, or remove it for a sixteenth of nfs.max_inflight_bytes")
	case share > budget:
		v.add("nfs.max_conn_inflight_bytes", n.MaxConnInflightBytes.String(),
			fmt.Sprintf("is more than nfs.max_inflight_bytes (%s), the budget of all connections", Size(budget)),
			"set it to at most nfs.max_inflight_bytes, or raise that")
	}
}

// defaultOf returns the default of a raft timing, for messages.
func defaultOf(field string) string {
	d := DefaultRaft()
	switch field {
	case "raft.heartbeat_timeout":
		return d.HeartbeatTimeout.String()
	case "raft.election_timeout":
		return d.ElectionTimeout.String()
	case "raft.leader_lease_timeout":
		return d.LeaderLeaseTimeout.String()
	case "raft.commit_timeout":
		return d.CommitTimeout.String()
	case "raft.apply_timeout":
		return d.ApplyTimeout.String()
	case "raft.snapshot_interval":
		return d.SnapshotInterval.String()
	}
	return "?"
}

func validRole(r string) bool { return r == RoleData || r == RoleWitness }

// preferAndResources checks prefer and the resource hooks.
func (v *collector) preferAndResources(c *Config) {
	if c.Prefer != "" {
		ok := false
		for _, p := range c.Peers {
			if p.ID == c.Prefer && p.Role == RoleData {
				ok = true
			}
		}
		if !ok {
			v.add("prefer", c.Prefer, "is not a data node among peers", "name a data node's id, or remove prefer")
		}
	}
	seen := map[string]bool{}
	for i, r := range c.Resources {
		f := fmt.Sprintf("resources[%d].", i)
		switch {
		case r.Name == "":
			v.add(f+"name", "", "is not set", "name the resource, e.g. floating-ip")
		case seen[r.Name]:
			v.add(f+"name", r.Name, "is used twice", "give each resource its own name")
		}
		seen[r.Name] = true
		if r.Start == "" && r.Stop == "" && r.Monitor == "" {
			v.add(f+"start", "", "no start, stop or monitor command", "give at least one command")
		}
		if r.Interval < 0 {
			v.add(f+"interval", r.Interval.String(), "is negative", "use e.g. 10s")
		}
		if r.Timeout < 0 {
			v.add(f+"timeout", r.Timeout.String(), "is negative", "use e.g. 30s")
		}
		if r.FailoverAfter < 0 {
			v.add(f+"failover_after", fmt.Sprint(r.FailoverAfter), "is negative", "use 0 (never) or a count such as 3")
		}
		if r.FailoverAfter > 0 && r.Monitor == "" {
			v.add(f+"failover_after", fmt.Sprint(r.FailoverAfter), "is set without a monitor command", "add monitor, or remove failover_after")
		}
	}
}

// backups checks seed_from and the backup schedules.
func (v *collector) backups(c *Config) {
	if c.Node.SeedFrom != "" {
		if c.Node.Role == RoleWitness {
			v.add("node.seed_from", c.Node.SeedFrom, "is set on a witness, which holds no state", "remove seed_from from the witness")
		}
		v.backupURL("node.seed_from", c.Node.SeedFrom)
	}
	if c.RestoreFrom != "" {
		if c.Node.SeedFrom != "" {
			v.add("restore_from", c.RestoreFrom, "is set together with node.seed_from", "keep restore_from for a cluster made from a backup, seed_from to rebuild a node of this cluster")
		}
		v.backupURL("restore_from", refURL(c.RestoreFrom))
	}
	seen := map[string]bool{}
	for i, b := range c.Backups {
		f := fmt.Sprintf("backups[%d].", i)
		switch {
		case b.State && b.Volume != "":
			v.add(f+"volume", b.Volume, "is set together with state: true", "one entry backs up one volume, or the node's state: split it in two")
		case !b.State && b.Volume == "":
			v.add(f+"volume", "", "is not set", "name the volume to back up, or set state: true for a state image")
		case seen[b.Name()+" "+b.To]:
			v.add(f+"volume", b.Name(), "is scheduled twice to the same URL", "keep one entry")
		}
		seen[b.Name()+" "+b.To] = true
		v.backupURL(f+"to", b.To)
		if b.Interval.D() < time.Second {
			v.add(f+"interval", b.Interval.String(), "is not set or under 1s", "use e.g. 1h")
		}
		if b.KeepLast < 0 || b.KeepDaily < 0 {
			v.add(f+"keep_last", fmt.Sprint(b.KeepLast, "/", b.KeepDaily), "is negative", "use 0 (keep all) or a count such as 24")
		}
	}
}

func (v *collector) backupURL(field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add(field, "", "is not set", "give a backup URL such as file:///var/backups/keel or s3://bucket/keel")
	case err != nil || (u.Scheme != "file" && u.Scheme != "s3"):
		v.add(field, raw, "is not a file:// or s3:// URL", "write e.g. file:///var/backups/keel or s3://bucket/keel")
	case u.Scheme == "file" && (u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/")):
		v.add(field, raw, "does not name an absolute directory", "write file:///absolute/path (three slashes)")
	case u.Scheme == "s3" && u.Host == "":
		v.add(field, raw, "names no bucket", "write s3://bucket/prefix")
	}
}

var backupIDSuffix = regexp.MustCompile(`@[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,32}$`)

// refURL returns the URL of a URL@ID backup reference.
func refURL(ref string) string { return backupIDSuffix.ReplaceAllString(ref, "") }
