package cluster

import (
	"context"
	"net/http"
	"sync"
	"time"

	"keel/internal/config"
)

// MemberStatus is one node's status as seen from the cluster, with its lag
// behind the leader.
type MemberStatus struct {
	ID        string      `json:"id"`
	Role      string      `json:"role"`
	AdminAddr string      `json:"admin_addr"`
	Reachable bool        `json:"reachable"`
	Voter     bool        `json:"voter"` // false while a joined node catches up
	Error     string      `json:"error,omitempty"`
	LagIndex  uint64      `json:"lag_entries"`
	LagBytes  uint64      `json:"lag_bytes"`
	Node      *NodeStatus `json:"node,omitempty"`
}

// Status is the whole cluster's status.
type Status struct {
	ClusterID string         `json:"cluster_id"`
	Leader    string         `json:"leader"`
	Term      uint64         `json:"term"`
	Healthy   bool           `json:"healthy"`
	Nodes     []MemberStatus `json:"nodes"`
	Volumes   []VolumeInfo   `json:"volumes"`
}

// Status asks every node for its status (in parallel, each bounded by
// timeout) and computes each one's lag behind the leader.
func (c *Client) Status(ctx context.Context, timeout time.Duration) Status {
	voters := c.RefreshMembers(ctx, timeout)
	c.mu.Lock()
	peers := c.Peers
	c.mu.Unlock()
	out := Status{ClusterID: c.ClusterID, Nodes: make([]MemberStatus, len(peers))}
	var wg sync.WaitGroup
	for i, p := range peers {
		out.Nodes[i] = MemberStatus{ID: p.ID, Role: p.Role, AdminAddr: p.AdminAddr, Voter: voters == nil || voters[p.ID]}
		wg.Add(1)
		go func(m *MemberStatus) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := c.NodeStatus(cctx, m.AdminAddr)
			if err != nil {
				m.Error = err.Error()
				return
			}
			m.Reachable = true
			m.Node = &st
		}(&out.Nodes[i])
	}
	wg.Wait()
	var leader *NodeStatus
	reachable := 0
	for _, m := range out.Nodes {
		if m.Node != nil {
			reachable++
			if m.Node.Raft.State == "leader" && (leader == nil || m.Node.Raft.Term > leader.Raft.Term) {
				leader = m.Node
			}
		}
	}
	if leader != nil {
		out.Leader, out.Term = leader.ID, leader.Raft.Term
		out.Volumes = leader.Volumes
		for i := range out.Nodes {
			n := out.Nodes[i].Node
			if n == nil {
				continue
			}
			if leader.Raft.LastIndex > n.Raft.AppliedIndex {
				out.Nodes[i].LagIndex = leader.Raft.LastIndex - n.Raft.AppliedIndex
			}
			if leader.Raft.AppliedBytes > n.Raft.AppliedBytes {
				out.Nodes[i].LagBytes = leader.Raft.AppliedBytes - n.Raft.AppliedBytes
			}
		}
	}
	out.Healthy = leader != nil && reachable == len(out.Nodes)
	return out
}

// RefreshMembers asks the cluster for its current members (nodes may have
// joined or left since the config was written) and uses them from then on.
// It returns which are voters, or nil if no node answered.
func (c *Client) RefreshMembers(ctx context.Context, timeout time.Duration) map[string]bool {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var ms []MemberInfo
	if err := c.Do(cctx, http.MethodGet, "/v1/members", nil, &ms); err != nil || len(ms) == 0 {
		return nil
	}
	voters := map[string]bool{}
	peers := make([]config.Peer, 0, len(ms))
	for _, m := range ms {
		peers = append(peers, m.Peer)
		voters[m.ID] = m.Voter
	}
	c.mu.Lock()
	c.Peers = peers
	c.mu.Unlock()
	return voters
}
