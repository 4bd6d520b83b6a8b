package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/fsstate"
	"keel/internal/join"
	"keel/internal/replication"
	"keel/internal/tlsutil"
)

// Membership: the members of the cluster (id, role, addresses) are kept as
// cluster records (member/<id>) in the replicated state, so that a node
// that joined later is known to every data node, survives restarts, and is
// found by the leader-following clients. A node's config lists the members
// it was made with; the records, once written, take over. The first leader
// writes them from its config. A witness, which keeps no state, asks the
// data nodes. Every node keeps its last list in <data_dir>/members.json.

const (
	recMember      = "member/"
	recToken       = "token/"
	recTokensSeed  = "init/tokens-imported"
	recMembersSeed = "init/members-written"
	membersFile    = "members.json"
)

// memberList is the node's view of the members.
type memberList struct {
	mu    sync.RWMutex
	peers []config.Peer
}

// peers returns the members this node knows.
func (n *Node) peers() []config.Peer {
	n.members.mu.RLock()
	defer n.members.mu.RUnlock()
	return slices.Clone(n.members.peers)
}

// peer returns the member id.
func (n *Node) peer(id string) (config.Peer, bool) {
	for _, p := range n.peers() {
		if p.ID == id {
			return p, true
		}
	}
	return config.Peer{}, false
}

// clientConfig is a client config for reaching the other members with this
// node's certificate.
func (n *Node) clientConfig() *config.Client {
	cc := cluster.FromNode(n.cfg)
	cc.Peers = n.peers()
	return cc
}

// initMembers sets the members from the config and the saved list.
func (n *Node) initMembers() {
	peers := slices.Clone(n.cfg.Peers)
	if b, err := os.ReadFile(filepath.Join(n.cfg.Path(n.cfg.Node.DataDir), membersFile)); err == nil {
		var saved []config.Peer
		if json.Unmarshal(b, &saved) == nil && len(saved) > 0 {
			peers = saved
		}
	}
	n.setMembers(n.ownRoutes(peers))
}

// ownRoutes replaces, in a member list from the records, the entries of
// the members this node's config names by its config's entries: each node
// may reach the others by its own route (NAT, a proxy), as before joins.
func (n *Node) ownRoutes(peers []config.Peer) []config.Peer {
	for i, p := range peers {
		for _, q := range n.cfg.Peers {
			if q.ID == p.ID {
				peers[i] = q
			}
		}
	}
	return peers
}

// setMembers replaces the member list (if it changed), tells raft the
// addresses and saves the list.
func (n *Node) setMembers(peers []config.Peer) {
	slices.SortFunc(peers, func(a, b config.Peer) int {
		if a.ID < b.ID {
			return -1
		} else if a.ID > b.ID {
			return 1
		}
		return 0
	})
	n.members.mu.Lock()
	same := slices.Equal(n.members.peers, peers)
	n.members.peers = peers
	n.members.mu.Unlock()
	if n.repl != nil {
		rp := make([]replication.Peer, len(peers))
		for i, p := range peers {
			rp[i] = replication.Peer{ID: p.ID, Addr: p.RaftAddr, Role: p.Role}
		}
		n.repl.SetPeers(rp)
	}
	if same {
		return
	}
	if b, err := json.MarshalIndent(peers, "", "  "); err == nil {
		_ = tlsutil.WriteFile0600(filepath.Join(n.cfg.Path(n.cfg.Node.DataDir), membersFile), b)
	}
}

// memberRecords reads the member records from the state (data nodes).
func (n *Node) memberRecords() ([]config.Peer, error) {
	s := n.repl.Store()
	if s == nil {
		return nil, errors.New("node: a witness keeps no member records")
	}
	recs, err := s.ClusterRecords(recMember)
	if err != nil {
		return nil, err
	}
	var out []config.Peer
	for _, r := range recs {
		var p config.Peer
		if json.Unmarshal(r.Value, &p) == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// putRecord sets (or, with nil v, deletes) a cluster record through raft.
func (n *Node) putRecord(ctx context.Context, name string, v any) error {
	cmd := &fsstate.Command{Op: fsstate.OpClusterSet, Name: name, Time: fsstate.Time(time.Now().UnixNano())}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		cmd.Data = b
	}
	res, err := n.repl.Apply(ctx, cmd)
	if err != nil {
		return err
	}
	if res.Err != 0 {
		return res.Err
	}
	return nil
}

// membersLoop keeps the member list current: from the records on a data
// node, from the data nodes on a witness. On the leader it also writes the
// first records, imports the tokens `keel init` made, and promotes
// non-voters that have caught up.
func (n *Node) membersLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if s := n.repl.Store(); s != nil {
			// The records are the list only once the first leader has
			// written them all (before that, the config's peers are).
			if done, _ := s.ClusterRecords(recMembersSeed); len(done) > 0 {
				if recs, err := n.memberRecords(); err == nil && len(recs) > 0 {
					n.setMembers(n.ownRoutes(recs))
				}
			}
		} else {
			n.refreshFromDataNodes(ctx)
		}
		if n.repl.IsLeader() && n.repl.Store() != nil {
			if err := n.seedRecords(ctx); err != nil {
				n.log.Warn("writing the first member records", "err", err)
			}
			n.promoteCaughtUp(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// seedRecords writes the member records from this node's list, once, and
// imports the join tokens of `keel init`. It is idempotent; the join
// handler runs it before adding a member.
func (n *Node) seedRecords(ctx context.Context) error {
	n.seedMu.Lock()
	defer n.seedMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.repl.ReadIndex(cctx); err != nil {
		return err
	}
	s := n.repl.Store()
	if done, _ := s.ClusterRecords(recMembersSeed); len(done) == 0 {
		for _, p := range n.peers() {
			if err := n.putRecord(cctx, recMember+p.ID, p); err != nil {
				return err
			}
		}
		if err := n.putRecord(cctx, recMembersSeed, true); err != nil {
			return err
		}
		n.log.Info("member records written", "members", len(n.peers()))
	}
	if done, _ := s.ClusterRecords(recTokensSeed); len(done) > 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(n.cfg.Dir, config.FileJoinTokens))
	if err == nil {
		var recs []join.Record
		if err := json.Unmarshal(b, &recs); err != nil {
			n.log.Warn("ignoring unreadable join tokens file", "file", config.FileJoinTokens, "err", err)
		}
		for _, r := range recs {
			if err := n.putRecord(cctx, recToken+r.ID, r); err != nil {
				return err
			}
		}
	}
	return n.putRecord(cctx, recTokensSeed, true)
}

// promoteCaughtUp makes voters of the non-voters whose applied index has
// reached the leader's commit index (less a small margin for entries in
// flight).
func (n *Node) promoteCaughtUp(ctx context.Context) {
	servers, err := n.repl.Servers()
	if err != nil {
		return
	}
	var client *cluster.Client
	for _, s := range servers {
		if s.Voter {
			continue
		}
		p, ok := n.peer(s.ID)
		if !ok {
			continue
		}
		if client == nil {
			if client, err = cluster.NewClient(n.clientConfig()); err != nil {
				return
			}
			defer client.Close()
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := client.NodeStatus(cctx, p.AdminAddr)
		cancel()
		if err != nil {
			continue
		}
		commit := n.repl.Status().CommitIndex
		if st.Raft.AppliedIndex+64 < commit {
			n.log.Info("joining node catching up", "node", s.ID, "applied", st.Raft.AppliedIndex, "leader_commit", commit)
			continue
		}
		if err := n.repl.Promote(s.ID, s.Addr); err != nil {
			n.log.Warn("promoting a caught-up node failed; will retry", "node", s.ID, "err", err)
			continue
		}
		n.log.Info("node caught up; now a voter", "node", s.ID, "applied", st.Raft.AppliedIndex)
	}
}

// refreshFromDataNodes asks the data nodes for the member list (witness).
func (n *Node) refreshFromDataNodes(ctx context.Context) {
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		return
	}
	defer client.Close()
	for _, p := range n.peers() {
		if p.Role != config.RoleData {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		var ms []cluster.MemberInfo
		err := client.GetLocal(cctx, p.AdminAddr, "/v1/members", &ms)
		cancel()
		if err != nil || len(ms) == 0 {
			continue
		}
		peers := make([]config.Peer, len(ms))
		for i, m := range ms {
			peers[i] = m.Peer
		}
		n.setMembers(n.ownRoutes(peers))
		return
	}
}
