package join

import "keel/internal/config"

// Path is the admin API route of the join request.
const Path = "/v1/join"

// Request is what a joining machine sends (POST Path, JSON).
type Request struct {
	TokenID     string `json:"token_id"`
	TokenSecret string `json:"token_secret"`
	// Role is data or witness for a node, client for a tunnel client.
	Role string `json:"role"`
	// ID is the node id, or the client name.
	ID string `json:"id"`
	// Hosts are the addresses the node is reached at (certificate names).
	Hosts []string `json:"hosts,omitempty"`
	// RaftAddr, AdminAddr and NFSAddr are a node's addresses.
	RaftAddr  string `json:"raft_addr,omitempty"`
	AdminAddr string `json:"admin_addr,omitempty"`
	NFSAddr   string `json:"nfs_addr,omitempty"`
}

// RoleClient is the Request role of a tunnel client.
const RoleClient = "client"

// Response is what the leader answers: everything the machine needs to
// write its config.
type Response struct {
	ClusterID string        `json:"cluster_id"`
	CACert    string        `json:"ca_cert"`
	Cert      string        `json:"cert"`
	Key       string        `json:"key"`
	Secret    string        `json:"secret,omitempty"` // nodes: the file-handle secret file's content
	CAKey     string        `json:"ca_key,omitempty"` // data nodes: the CA key, so that they can sign joins when they lead
	Peers     []config.Peer `json:"peers"`            // every member, the new one included
	Raft      *config.Raft  `json:"raft,omitempty"`   // nodes: the leader's raft timings
	// Member says the node was added to the raft group as a non-voter; it
	// is promoted to voter once it has caught up.
	Member bool `json:"member"`
}
