package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// good returns a valid node config of a 2 data + 1 witness cluster.
func good() Config {
	c := Default()
	c.ClusterID = "c0ffee"
	c.Node = NodeConfig{ID: "n1", Role: RoleData, DataDir: "data", RaftAddr: "10.0.0.1:7001", AdminAddr: "10.0.0.1:7002"}
	c.Peers = []Peer{
		{ID: "n1", Role: RoleData, RaftAddr: "10.0.0.1:7001", AdminAddr: "10.0.0.1:7002"},
		{ID: "n2", Role: RoleData, RaftAddr: "10.0.0.2:7001", AdminAddr: "10.0.0.2:7002"},
		{ID: "w1", Role: RoleWitness, RaftAddr: "10.0.0.3:7001", AdminAddr: "10.0.0.3:7002"},
	}
	c.TLS = TLSFiles{CA: "ca.crt", Cert: "node.crt", Key: "node.key", Secret: "secret"}
	c.Bootstrap = true
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		fields []string // fields expected in error, in order; nil: valid
	}{
		{"good", func(c *Config) {}, nil},
		{"three data nodes", func(c *Config) { c.Peers[2].Role = RoleData }, nil},
		{"one data node", func(c *Config) { c.Peers = c.Peers[:1] }, nil},
		{"hostname addresses", func(c *Config) {
			c.Node.RaftAddr, c.Peers[0].RaftAddr = "node1.lan:7001", "NODE1.lan:7001"
		}, nil},
		{"ipv6", func(c *Config) {
			c.Node.RaftAddr, c.Peers[0].RaftAddr = "[fd00::1]:7001", "[fd00:0::1]:7001"
		}, nil},
		{"no cluster id", func(c *Config) { c.ClusterID = "" }, []string{"cluster_id"}},
		{"seed and backups", func(c *Config) {
			c.Node.SeedFrom = "s3://bucket/keel"
			c.Backups = []BackupSchedule{{Volume: "data", To: "file:///b", Interval: Duration(time.Hour), KeepLast: 3},
				{State: true, To: "file:///b", Interval: Duration(time.Minute)}}
		}, nil},
		{"seed on a witness", func(c *Config) {
			c.Node, c.Peers[0].Role = NodeConfig{ID: "n1", Role: RoleWitness, DataDir: "d", RaftAddr: "10.0.0.1:7001",
				AdminAddr: "10.0.0.1:7002", SeedFrom: "file:///b"}, RoleWitness
			c.Peers[2].Role = RoleData
		}, []string{"node.seed_from"}},
		{"seed from a bad URL", func(c *Config) { c.Node.SeedFrom = "/var/backups" }, []string{"node.seed_from"}},
		{"bad backup schedules", func(c *Config) {
			c.Backups = []BackupSchedule{{To: "file:///b", Interval: Duration(time.Hour)},
				{Volume: "v", State: true, To: "file://host/b", Interval: 0},
				{Volume: "data", To: "s3:///x", Interval: Duration(time.Hour), KeepLast: -1}}
		}, []string{"backups[0].volume", "backups[1].volume", "backups[1].to", "backups[1].interval", "backups[2].to", "backups[2].keep_last"}},
		{"bad cluster id", func(c *Config) { c.ClusterID = "My Cluster" }, []string{"cluster_id"}},
		{"bad node id", func(c *Config) { c.Node.ID = "Node_1"; c.Peers[0].ID = "Node_1" }, []string{"node.id", "peers[0].id"}},
		{"long node id", func(c *Config) { c.Node.ID = strings.Repeat("a", 33) }, []string{"node.id", "peers"}},
		{"bad role", func(c *Config) { c.Node.Role = "leader" }, []string{"node.role"}},
		{"bad peer role", func(c *Config) { c.Peers[1].Role = "leader" }, []string{"peers[1].role", "peers"}},
		{"no data dir", func(c *Config) { c.Node.DataDir = "" }, []string{"node.data_dir"}},
		{"raft addr not host:port", func(c *Config) { c.Node.RaftAddr = "abc" }, []string{"node.raft_addr"}},
		{"admin port out of range", func(c *Config) { c.Node.AdminAddr = "10.0.0.1:70000" }, []string{"node.admin_addr"}},
		{"port zero", func(c *Config) { c.Node.AdminAddr = "10.0.0.1:0" }, []string{"node.admin_addr"}},
		{"no host", func(c *Config) { c.Node.RaftAddr = ":7001"; c.Peers[0].RaftAddr = ":7001" }, []string{"node.raft_addr", "peers[0].raft_addr"}},
		{"unspecified host", func(c *Config) { c.Peers[1].AdminAddr = "0.0.0.0:7002" }, []string{"peers[1].admin_addr"}},
		{"raft = admin", func(c *Config) {
			c.Node.AdminAddr, c.Peers[0].AdminAddr = c.Node.RaftAddr, c.Node.RaftAddr
		}, []string{"node.admin_addr", "peers[0].admin_addr"}},
		{"no peers", func(c *Config) { c.Peers = nil }, []string{"peers"}},
		{"too many peers", func(c *Config) {
			for i := 0; i < 5; i++ {
				c.Peers = append(c.Peers, Peer{ID: "x" + string(rune('a'+i)), Role: RoleData,
					RaftAddr: "10.0.1." + string(rune('1'+i)) + ":7001", AdminAddr: "10.0.1." + string(rune('1'+i)) + ":7002"})
			}
		}, []string{"peers"}},
		{"duplicate peer id", func(c *Config) { c.Peers[1].ID = "n1" }, []string{"peers[1].id"}},
		{"duplicate peer address", func(c *Config) { c.Peers[1].RaftAddr = "10.0.0.1:7001" }, []string{"peers[1].raft_addr"}},
		{"this node missing", func(c *Config) { c.Node.ID = "n9" }, []string{"peers"}},
		{"this node's address differs", func(c *Config) { c.Peers[0].RaftAddr = "10.0.0.9:7001" }, []string{"peers[0].raft_addr"}},
		{"this node's role differs", func(c *Config) { c.Peers[0].Role = RoleWitness; c.Peers[2].Role = RoleData }, []string{"peers[0].role"}},
		{"two data nodes", func(c *Config) { c.Peers = c.Peers[:2] }, []string{"peers"}},
		{"data + witness", func(c *Config) { c.Peers = []Peer{c.Peers[0], c.Peers[2]} }, []string{"peers"}},
		{"two witnesses", func(c *Config) {
			c.Peers = append(c.Peers, Peer{ID: "w2", Role: RoleWitness, RaftAddr: "10.0.0.4:7001", AdminAddr: "10.0.0.4:7002"})
		}, []string{"peers"}},
		{"no tls", func(c *Config) { c.TLS = TLSFiles{} }, []string{"tls.ca", "tls.cert", "tls.key", "tls.secret"}},
		{"zero heartbeat", func(c *Config) { c.Raft.HeartbeatTimeout = 0 }, []string{"raft.heartbeat_timeout"}},
		{"election < heartbeat", func(c *Config) { c.Raft.ElectionTimeout = Duration(300 * time.Millisecond) }, []string{"raft.election_timeout"}},
		{"lease > heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = Duration(2 * time.Second) }, []string{"raft.leader_lease_timeout"}},
		{"log segment too small", func(c *Config) { c.Raft.LogSegmentSize = 64 << 10 }, []string{"raft.log_segment_size"}},
		{"min free space too small", func(c *Config) { c.Node.MinFreeSpace = 1 << 20 }, []string{"node.min_free_space"}},
		{"log segment too big", func(c *Config) { c.Raft.LogSegmentSize = 2 << 30 }, []string{"raft.log_segment_size"}},
		{"no apply timeout", func(c *Config) { c.Raft.ApplyTimeout = 0 }, []string{"raft.apply_timeout"}},
		{"negative commit", func(c *Config) { c.Raft.CommitTimeout = -1 }, []string{"raft.commit_timeout"}},
		{"bad log", func(c *Config) { c.Log = Log{Level: "loud", Format: "xml"} }, []string{"log.level", "log.format"}},
		{"nfs bounds", func(c *Config) { c.NFS = NFS{MaxInflightBytes: 1 << 30, MaxConnInflightBytes: 64 << 20} }, nil},
		{"nfs share of the default budget", func(c *Config) { c.NFS.MaxConnInflightBytes = 256 << 20 }, nil},
		{"nfs budget too small", func(c *Config) { c.NFS.MaxInflightBytes = 1 << 20 }, []string{"nfs.max_inflight_bytes"}},
		{"nfs share too small", func(c *Config) { c.NFS.MaxConnInflightBytes = 64 << 10 }, []string{"nfs.max_conn_inflight_bytes"}},
		{"nfs share over the budget", func(c *Config) { c.NFS = NFS{MaxInflightBytes: 32 << 20, MaxConnInflightBytes: 64 << 20} },
			[]string{"nfs.max_conn_inflight_bytes"}},
		{"nfs share over the default budget", func(c *Config) { c.NFS.MaxConnInflightBytes = 512 << 20 }, []string{"nfs.max_conn_inflight_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			c.Peers = slices.Clone(c.Peers)
			tt.mutate(&c)
			err := c.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			var fe FieldErrors
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v (%T), want FieldErrors", err, err)
			}
			if got := fe.Fields(); !slices.Equal(got, tt.fields) {
				t.Fatalf("fields %q, want %q; error:\n%v", got, tt.fields, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.fields) {
				t.Fatalf("%d lines for %d problems:\n%v", len(lines), len(tt.fields), err)
			}
			for i, l := range lines {
				if !strings.HasPrefix(l, tt.fields[i]+": ") || fe[i].Fix == "" {
					t.Errorf("line %q does not name %s or lacks a fix", l, tt.fields[i])
				}
			}
		})
	}
}

func TestValidateMessage(t *testing.T) {
	c := good()
	c.Node.RaftAddr = "abc"
	err := c.Validate()
	want := `node.raft_addr: "abc" is not host:port; set it to e.g. 10.0.0.1:7001`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got:\n%v\nwant a line %s", err, want)
	}
	c = good()
	c.Peers = c.Peers[:2]
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "witness") || !strings.Contains(err.Error(), "loss of either") {
		t.Fatalf("two-node message does not explain: %v", err)
	}
	// A node that joined a running cluster is not checked for the shape:
	// a cluster grows through 2 data nodes on its way to 3.
	c.Bootstrap = false
	if err := c.Validate(); err != nil {
		t.Fatalf("joined node with 2 data peers: %v", err)
	}
}

func TestValidateEverythingAtOnce(t *testing.T) {
	var c Config
	err := c.Validate()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatal(err)
	}
	for _, f := range []string{"cluster_id", "node.id", "node.role", "node.data_dir", "node.raft_addr", "node.admin_addr", "peers", "tls.ca", "raft.heartbeat_timeout", "raft.apply_timeout", "log.level", "log.format"} {
		if !slices.Contains(fe.Fields(), f) {
			t.Errorf("%s not reported:\n%v", f, err)
		}
	}
}

func TestValidateClient(t *testing.T) {
	g := good()
	ok := Client{ClusterID: "c0ffee", Peers: g.Peers, TLS: TLSFiles{CA: "ca.crt", Cert: "client.crt", Key: "client.key"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	// A client needs only ids and admin addresses.
	minimal := ok
	minimal.Peers = []Peer{{ID: "n1", AdminAddr: "10.0.0.1:7002"}}
	if err := minimal.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Client{Peers: []Peer{{ID: "n1", AdminAddr: "nope"}, {ID: "n1", AdminAddr: "10.0.0.1:7002", Role: "boss"}}}
	err := bad.Validate()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatal(err)
	}
	want := []string{"cluster_id", "peers[0].admin_addr", "peers[1].id", "peers[1].role", "tls.ca", "tls.cert", "tls.key"}
	if !slices.Equal(fe.Fields(), want) {
		t.Fatalf("fields %q, want %q:\n%v", fe.Fields(), want, err)
	}
}
