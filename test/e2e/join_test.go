package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

// initTokens reads the tokens `keel init --json` printed.
func initTokens(t *testing.T, c *Cluster) (node, client string) {
	t.Helper()
	// initCluster kept only the layout; the tokens are in the nodes'
	// join-tokens.json as hashes, so run a fresh token create instead when
	// the cluster runs. Here: ask the cluster.
	var tok cluster.TokenInfo
	for _, purpose := range []string{"node", "client"} {
		r := c.keel(30*time.Second, "token", "create", "--purpose", purpose, "--ttl", "10m", "--json")
		if r.Code != 0 {
			t.Fatalf("keel token create --purpose %s: exit %d: %s", purpose, r.Code, r.Stderr)
		}
		if err := json.Unmarshal([]byte(r.Stdout), &tok); err != nil {
			t.Fatal(err)
		}
		if purpose == "node" {
			node = tok.Token
		} else {
			client = tok.Token
		}
	}
	return node, client
}

// joinMember runs `keel join --no-start` for a new member on free loopback
// ports and adds it to c (not started).
func joinMember(t *testing.T, c *Cluster, via *Member, id, token string, witness bool) *Member {
	t.Helper()
	ports := freePorts(t, 3)
	dir := filepath.Join(c.Dir, "joined", id)
	args := []string{"join", via.AdminAddr, "--token", token, "--id", id, "--host", "127.0.0.1", "--no-start", "--dir", dir,
		"--raft-port", fmt.Sprint(ports[0]), "--admin-port", fmt.Sprint(ports[1]), "--nfs-port", fmt.Sprint(ports[2]), "--timeout", "30s"}
	role := config.RoleData
	if witness {
		args = append(args, "--witness")
		role = config.RoleWitness
	}
	r := runKeel(t, 45*time.Second, args...)
	if r.Code != 0 {
		t.Fatalf("keel join %s: exit %d: %s", id, r.Code, r.Stderr)
	}
	cfgPath := filepath.Join(dir, config.FileNodeConfig)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bootstrap || cfg.Node.Role != role || cfg.ClusterID != c.ID {
		t.Fatalf("joined config: bootstrap %v role %s cluster %s", cfg.Bootstrap, cfg.Node.Role, cfg.ClusterID)
	}
	if (cfg.TLS.CAKey != "") != !witness {
		t.Fatalf("%s node %s: ca_key %q: only data nodes hold the CA key", role, id, cfg.TLS.CAKey)
	}
	m := &Member{c: c, ID: id, Role: role, Dir: dir, Config: cfgPath, Log: filepath.Join(dir, "keel.log"),
		RaftAddr: cfg.Node.RaftAddr, AdminAddr: cfg.Node.AdminAddr, NFSAddr: cfg.Node.NFSAddr}
	c.Members = append(c.Members, m)
	return m
}

// waitVoters waits until the cluster's members are exactly ids, all voters.
func waitVoters(t *testing.T, c *Cluster, timeout time.Duration, ids ...string) {
	t.Helper()
	waitFor(t, timeout, "voters "+strings.Join(ids, ","), func() (bool, string) {
		st := c.Status()
		var got []string
		for _, n := range st.Nodes {
			if n.Voter {
				got = append(got, n.ID)
			}
		}
		return strings.Join(got, ",") == strings.Join(ids, ",") && st.Leader != "", fmt.Sprintf("voters %v leader %q", got, st.Leader)
	})
}

// TestJoinGrowsAndShrinks starts a one-node cluster, joins a data node and
// a witness with a token (certificates issued by the leader over TLS pinned
// by the token's CA fingerprint), checks the new data node caught up and
// keeps the cluster serving when the first node dies, then exercises token
// revocation, a tunnel client's join, a wrong fingerprint, and removal
// refused without a quorum.
func TestJoinGrowsAndShrinks(t *testing.T) {
	c := startCluster(t, Shape{Data: 1, Fast: true})
	n1 := c.Member("n1")
	c.createVolume("data", 1<<30)
	tmp := t.TempDir()
	before := filepath.Join(tmp, "before")
	if err := os.WriteFile(before, content("before-join", 300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.keel(30*time.Second, "fs", "put", before, "data:/before.bin"); r.Code != 0 {
		t.Fatalf("fs put: %s", r.Stderr)
	}
	nodeTok, clientTok := initTokens(t, c)

	n2 := joinMember(t, c, n1, "n2", nodeTok, false)
	n2.Start()
	w1 := joinMember(t, c, n1, "w1", nodeTok, true)
	w1.Start()
	waitVoters(t, c, 30*time.Second, "n1", "n2", "w1")
	want := sum(content("before-join", 300<<10))
	waitFor(t, 20*time.Second, "the file written before the join on n2", func() (bool, string) {
		got, err := n2.FileSum("data", "/before.bin")
		return err == nil && got == want, fmt.Sprint(got, err)
	})

	// The same node id again, at other addresses, is refused.
	r := runKeel(t, 30*time.Second, "join", n1.AdminAddr, "--token", nodeTok, "--id", "n2", "--host", "127.0.0.1",
		"--no-start", "--dir", filepath.Join(tmp, "dup"), "--raft-port", "1", "--admin-port", "2", "--nfs-port", "3")
	if r.Code == 0 || !strings.Contains(r.Stderr, "already a member") {
		t.Fatalf("joining twice as n2: exit %d: %s", r.Code, r.Stderr)
	}
	// A token with another CA's fingerprint is refused before any secret
	// is sent.
	parts := strings.Split(nodeTok, ".")
	parts[3] = strings.Repeat("0", 64)
	r = runKeel(t, 30*time.Second, "join", n1.AdminAddr, "--token", strings.Join(parts, "."), "--id", "n9", "--no-start", "--dir", filepath.Join(tmp, "pin"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "fingerprint") {
		t.Fatalf("join with a wrong CA fingerprint: exit %d: %s", r.Code, r.Stderr)
	}
	// A node token does not make a tunnel client.
	r = runKeel(t, 30*time.Second, "tunnel", "join", n1.AdminAddr, "--token", nodeTok, "--name", "c1", "--dir", filepath.Join(tmp, "c0"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "is for node") {
		t.Fatalf("tunnel join with a node token: exit %d: %s", r.Code, r.Stderr)
	}

	// The first node dies: the joined data node and the witness carry on.
	n1.Kill9()
	waitFor(t, 30*time.Second, "n2 to lead after n1's death", func() (bool, string) {
		st := c.Status()
		return st.Leader == "n2", "leader " + st.Leader
	})
	after := filepath.Join(tmp, "after")
	if err := os.WriteFile(after, []byte("written with n1 down\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runKeel(t, 30*time.Second, "fs", "put", after, "data:/after.txt", "--config", n2.Config); r.Code != 0 {
		t.Fatalf("fs put with n1 down: %s", r.Stderr)
	}

	// A tunnel client joins through the new leader, with the client token.
	cdir := filepath.Join(tmp, "c1")
	r = runKeel(t, 30*time.Second, "tunnel", "join", n2.AdminAddr, "--token", clientTok, "--name", "c1", "--dir", cdir)
	if r.Code != 0 {
		t.Fatalf("tunnel join: exit %d: %s", r.Code, r.Stderr)
	}
	r = runKeel(t, 30*time.Second, "fs", "cat", "data:/after.txt", "--config", filepath.Join(cdir, "client.yaml"))
	if r.Code != 0 || r.Stdout != "written with n1 down\n" {
		t.Fatalf("fs cat with the joined client's certificate: exit %d: %q %s", r.Code, r.Stdout, r.Stderr)
	}

	// Tokens: listed by the new leader (replicated), revoked everywhere.
	var toks []cluster.TokenInfo
	r = runKeel(t, 30*time.Second, "token", "list", "--json", "--config", n2.Config)
	if err := json.Unmarshal([]byte(r.Stdout), &toks); err != nil || r.Code != 0 {
		t.Fatalf("token list: %v %s", err, r.Stderr)
	}
	id := strings.Split(nodeTok, ".")[1]
	found := false
	for _, tk := range toks {
		found = found || tk.ID == id
	}
	if !found {
		t.Fatalf("token %s not listed by n2: %+v", id, toks)
	}
	if r := runKeel(t, 30*time.Second, "token", "revoke", id, "--config", n2.Config); r.Code != 0 {
		t.Fatalf("token revoke: %s", r.Stderr)
	}
	r = runKeel(t, 30*time.Second, "join", n2.AdminAddr, "--token", nodeTok, "--id", "n3", "--host", "127.0.0.1", "--no-start", "--dir", filepath.Join(tmp, "n3"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "not known") {
		t.Fatalf("join with a revoked token: exit %d: %s", r.Code, r.Stderr)
	}

	// Removing the witness while n1 is down would leave n1 and n2 as
	// voters with only n2 answering: refused.
	r = runKeel(t, 30*time.Second, "remove", "w1", "--config", n2.Config)
	if r.Code == 0 || !strings.Contains(r.Stderr, "quorum") {
		t.Fatalf("remove w1 with n1 down: exit %d: %s", r.Code, r.Stderr)
	}
	// n1 comes back; now the witness may leave.
	n1.Start()
	waitVoters(t, c, 30*time.Second, "n1", "n2", "w1")
	// The leader lets a voter go only when the others answer it as their
	// leader; n1 may not have heard from the leader yet.
	waitFor(t, 30*time.Second, "n1 following the leader", func() (bool, string) {
		st, err := n1.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.Raft.LeaderID != "", fmt.Sprintf("n1 is %s, leader %q", st.Raft.State, st.Raft.LeaderID)
	})
	r = runKeel(t, 30*time.Second, "leave", "--config", w1.Config)
	if r.Code != 0 || !strings.Contains(r.Stdout, "removed w1") {
		t.Fatalf("keel leave on w1: exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
	waitVoters(t, c, 30*time.Second, "n1", "n2")
}
