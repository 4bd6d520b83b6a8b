package cluster

import (
	"context"
	"sync"
	"time"
)

// MemberStatus is one node's status as seen from the cluster, with its lag
// behind the leader.
type MemberStatus struct {
	ID        string      `json:"id"`
	Role      string      `json:"role"`
	AdminAddr string      `json:"admin_addr"`
	Reachable bool        `json:"reachable"`
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
	out := Status{ClusterID: c.ClusterID, Nodes: make([]MemberStatus, len(c.Peers))}
	var wg sync.WaitGroup
	for i, p := range c.Peers {
		out.Nodes[i] = MemberStatus{ID: p.ID, Role: p.Role, AdminAddr: p.AdminAddr}
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
