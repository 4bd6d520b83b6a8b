package replication

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// peerAddrs resolves server ids to the addresses this node knows them by:
// its config's peers, then the members it learned of since (SetPeers).
type peerAddrs struct {
	mu    sync.RWMutex
	peers []Peer
}

func (p *peerAddrs) set(peers []Peer) {
	p.mu.Lock()
	p.peers = append([]Peer(nil), peers...)
	p.mu.Unlock()
}

func (p *peerAddrs) get() []Peer {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]Peer(nil), p.peers...)
}

func (p *peerAddrs) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, q := range p.peers {
		if q.ID == string(id) {
			return raft.ServerAddress(q.Addr), nil
		}
	}
	return "", fmt.Errorf("replication: no address for server %s in this node's peers", id)
}

// SetPeers replaces the members this node knows, and dials, by id.
func (n *Node) SetPeers(peers []Peer) { n.addrs.set(peers) }

// Server is a member of the raft configuration.
type Server struct {
	ID    string `json:"id"`
	Addr  string `json:"raft_addr"`
	Voter bool   `json:"voter"`
}

// Servers returns the latest raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

const membershipTimeout = 10 * time.Second

// AddNonvoter adds a server that receives the log but does not vote yet
// (a node that is joining and has to catch up first). Adding one that is
// already a member with the same address changes nothing.
func (n *Node) AddNonvoter(id, addr string) error {
	if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return n.mapErr(err)
	}
	return nil
}

// Promote makes a server a voter.
func (n *Node) Promote(id, addr string) error {
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout).Error(); err != nil {
		return n.mapErr(err)
	}
	return nil
}

// RemoveServer removes a server from the raft group.
func (n *Node) RemoveServer(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error(); err != nil {
		return n.mapErr(err)
	}
	return nil
}

// AppliedIndex returns the index this node has applied.
func (n *Node) AppliedIndex() uint64 { return n.tracker().get() }
