package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
	"keel/internal/join"
	"keel/internal/replication"
	"keel/internal/tlsutil"
)

func (n *Node) notLeaderErr() error {
	id, _ := n.repl.Leader()
	if id == n.cfg.Node.ID {
		id = ""
	}
	return &replication.NotLeaderError{LeaderID: id}
}

// The join flow on the node's side: a machine with a token (join package)
// connects to the admin port asking for tlsutil.JoinServerName, without a
// certificate; only POST /v1/join is open to it. The leader checks the
// token against its record, issues the certificate with the cluster CA
// (tls.ca_key, on data nodes), records the member and adds it to raft as a
// non-voter; membersLoop promotes it once it has caught up.

// requireCert lets a request without a cluster certificate reach only the
// join request.
func requireCert(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			if r.Method == http.MethodPost && r.URL.Path == join.Path {
				h.ServeHTTP(w, r)
				return
			}
			writeJSON(w, http.StatusUnauthorized, cluster.ErrorBody{Error: "this needs a certificate of the cluster: use client.yaml from `keel init` or `keel tunnel join`"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (n *Node) joinRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+join.Path, n.handleJoin)
	mux.HandleFunc("GET /v1/members", n.handleMembers)
	mux.HandleFunc("DELETE /v1/members/{id}", n.handleRemove)
	mux.HandleFunc("POST /v1/tokens", n.handleCreateToken)
	mux.HandleFunc("GET /v1/tokens", n.handleListTokens)
	mux.HandleFunc("DELETE /v1/tokens/{id}", n.handleRevokeToken)
}

// leaderReady answers for a non-leader and waits for a read index on the
// leader; false means an answer was written.
func (n *Node) leaderReady(w http.ResponseWriter, r *http.Request) bool {
	if n.repl.Store() == nil || !n.repl.IsLeader() {
		n.writeErr(w, n.notLeaderErr())
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := n.repl.ReadIndex(ctx); err != nil {
		n.writeErr(w, err)
		return false
	}
	return true
}

func (n *Node) tokenRecord(id string) (join.Record, bool, error) {
	recs, err := n.repl.Store().ClusterRecords(recToken + id)
	if err != nil {
		return join.Record{}, false, err
	}
	for _, rec := range recs {
		if rec.Name == recToken+id {
			var out join.Record
			if err := json.Unmarshal(rec.Value, &out); err != nil {
				return join.Record{}, false, err
			}
			return out, true, nil
		}
	}
	return join.Record{}, false, nil
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req join.Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "bad join request: "+err.Error())
		return
	}
	if !n.leaderReady(w, r) {
		return
	}
	refuse := func(code int, msg string) { writeJSON(w, code, cluster.ErrorBody{Error: msg}) }
	rec, ok, err := n.tokenRecord(req.TokenID)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	if !ok {
		refuse(http.StatusForbidden, fmt.Sprintf("token %s is not known to this cluster (revoked, or made for another cluster): make one with `keel token create`", req.TokenID))
		return
	}
	purpose := join.PurposeNode
	if req.Role == join.RoleClient {
		purpose = join.PurposeClient
	}
	if err := rec.Check(req.TokenSecret, purpose, time.Now()); err != nil {
		refuse(http.StatusForbidden, err.Error())
		return
	}
	ca, err := n.loadCA()
	if err != nil {
		refuse(http.StatusConflict, err.Error())
		return
	}
	caPEM := string(ca.CertPEM())
	if purpose == join.PurposeClient {
		if err := tlsutil.CheckClientName(req.ID); err != nil {
			badRequest(w, err.Error())
			return
		}
		cert, key, err := ca.IssueClient(req.ID)
		if err != nil {
			n.writeErr(w, err)
			return
		}
		n.log.Info("tunnel client joined", "client", req.ID, "token", rec.ID, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, join.Response{ClusterID: n.cfg.ClusterID, CACert: caPEM, Cert: string(cert), Key: string(key), Peers: n.peers()})
		return
	}
	p, msg := n.checkJoiner(req)
	if msg != "" {
		refuse(http.StatusConflict, msg)
		return
	}
	hosts := slices.Clone(req.Hosts)
	for _, a := range []string{p.RaftAddr, p.AdminAddr, p.NFSAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	cert, key, err := ca.IssueNode(p.ID, hosts)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	resp := join.Response{ClusterID: n.cfg.ClusterID, CACert: caPEM, Cert: string(cert), Key: string(key), Raft: &n.cfg.Raft, Member: true}
	secret, err := os.ReadFile(n.cfg.Path(n.cfg.TLS.Secret))
	if err != nil {
		n.writeErr(w, fmt.Errorf("node: read the cluster secret: %w", err))
		return
	}
	resp.Secret = string(secret)
	if p.Role == config.RoleData {
		caKey, err := os.ReadFile(n.cfg.Path(n.cfg.TLS.CAKey))
		if err != nil {
			n.writeErr(w, fmt.Errorf("node: read the CA key: %w", err))
			return
		}
		resp.CAKey = string(caKey)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := n.seedRecords(ctx); err != nil {
		n.writeErr(w, err)
		return
	}
	if err := n.putRecord(ctx, recMember+p.ID, p); err != nil {
		n.writeErr(w, err)
		return
	}
	peers := append(slices.DeleteFunc(n.peers(), func(q config.Peer) bool { return q.ID == p.ID }), p)
	n.setMembers(n.ownRoutes(peers))
	if err := n.repl.AddNonvoter(p.ID, p.RaftAddr); err != nil {
		n.writeErr(w, err)
		return
	}
	resp.Peers = n.peers()
	n.log.Info("node joined as a non-voter; it becomes a voter once caught up", "joined", p.ID, "role", p.Role, "raft_addr", p.RaftAddr, "token", rec.ID)
	writeJSON(w, http.StatusOK, resp)
}

// checkJoiner turns a node's join request into its member entry, or says
// why it cannot join. Joining again with the same id and addresses is
// allowed (a retry); anything that clashes with another member is not.
func (n *Node) checkJoiner(req join.Request) (config.Peer, string) {
	p := config.Peer{ID: req.ID, Role: req.Role, RaftAddr: req.RaftAddr, AdminAddr: req.AdminAddr, NFSAddr: req.NFSAddr}
	if err := tlsutil.CheckNodeID(p.ID); err != nil {
		return p, err.Error()
	}
	if p.Role != config.RoleData && p.Role != config.RoleWitness {
		return p, fmt.Sprintf("role %q: join as data or witness", p.Role)
	}
	for what, a := range map[string]string{"raft_addr": p.RaftAddr, "admin_addr": p.AdminAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil || a == "" {
			return p, fmt.Sprintf("%s %q is not host:port", what, a)
		}
	}
	if p.Role == config.RoleWitness && p.NFSAddr != "" {
		return p, "a witness serves no NFS: leave nfs_addr out"
	}
	for _, q := range n.peers() {
		if q.ID == p.ID {
			if q == p {
				continue // the same join again
			}
			return p, fmt.Sprintf("node id %s is already a member (%s at %s): choose another id, or `keel remove %s` first", p.ID, q.Role, q.RaftAddr, p.ID)
		}
		if p.Role == config.RoleWitness && q.Role == config.RoleWitness {
			return p, fmt.Sprintf("the cluster already has a witness (%s): keep at most one; join this machine as a data node, or `keel remove %s` first", q.ID, q.ID)
		}
		for _, a := range []string{p.RaftAddr, p.AdminAddr, p.NFSAddr} {
			if a != "" && (a == q.RaftAddr || a == q.AdminAddr || a == q.NFSAddr) {
				return p, fmt.Sprintf("address %s is already used by member %s", a, q.ID)
			}
		}
	}
	if len(n.peers()) >= config.MaxPeers {
		return p, fmt.Sprintf("the cluster has %d members, the most keel supports", config.MaxPeers)
	}
	return p, ""
}

// loadCA reads the CA this node signs joins with.
func (n *Node) loadCA() (*tlsutil.CA, error) {
	if n.cfg.TLS.CAKey == "" {
		return nil, errors.New("this node has no CA key (tls.ca_key), so the cluster cannot sign joins: it was made with `keel init --keep-ca-offline`; issue certificates on the admin machine instead")
	}
	ca, err := tlsutil.LoadCA(n.cfg.Path(n.cfg.TLS.CA), n.cfg.Path(n.cfg.TLS.CAKey))
	if err != nil {
		return nil, fmt.Errorf("cannot sign joins: %w", err)
	}
	return ca, nil
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request) {
	servers, _ := n.repl.Servers()
	out := []cluster.MemberInfo{}
	for _, p := range n.peers() {
		m := cluster.MemberInfo{Peer: p}
		for _, s := range servers {
			if s.ID == p.ID {
				m.InRaft, m.Voter = true, s.Voter
			}
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRemove takes a member out of the cluster: out of raft, then out of
// the records. It is refused if the voters left could not form a quorum of
// reachable nodes, or if no data node would be left, unless force=true.
func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	force := r.URL.Query().Get("force") == "true"
	if !n.leaderReady(w, r) {
		return
	}
	servers, err := n.repl.Servers()
	if err != nil {
		n.writeErr(w, err)
		return
	}
	p, known := n.peer(id)
	inRaft := slices.ContainsFunc(servers, func(s replication.Server) bool { return s.ID == id })
	if !known && !inRaft {
		writeJSON(w, http.StatusNotFound, cluster.ErrorBody{Error: "no member " + id + " in this cluster; `keel status` lists them"})
		return
	}
	if id == n.cfg.Node.ID {
		// Hand leadership away first; the client follows the answer to the
		// new leader, which removes this node.
		if err := n.repl.Transfer("", ""); err != nil {
			n.writeErr(w, err)
			return
		}
		n.writeErr(w, n.notLeaderErr())
		return
	}
	var left, reachable []string
	data := 0
	client, err := cluster.NewClient(n.clientConfig())
	if err != nil {
		n.writeErr(w, err)
		return
	}
	defer client.Close()
	for _, s := range servers {
		if s.ID == id || !s.Voter {
			continue
		}
		left = append(left, s.ID)
		q, _ := n.peer(s.ID)
		if q.Role == config.RoleData {
			data++
		}
		if s.ID == n.cfg.Node.ID {
			reachable = append(reachable, s.ID)
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		st, err := client.NodeStatus(ctx, q.AdminAddr)
		cancel()
		if err == nil && st.Raft.LeaderID == n.cfg.Node.ID {
			reachable = append(reachable, s.ID)
		}
	}
	var problems []string
	if len(reachable) < len(left)/2+1 {
		problems = append(problems, fmt.Sprintf("without %s the voters would be %s, of which only %d answer (%s); a quorum needs %d",
			id, strings.Join(left, ", "), len(reachable), strings.Join(reachable, ", "), len(left)/2+1))
	}
	if data == 0 {
		problems = append(problems, "no data node would be left: the files live on data nodes")
	}
	if len(problems) > 0 && !force {
		writeJSON(w, http.StatusConflict, cluster.ErrorBody{Error: "removing " + id + " would lose the cluster's quorum or data: " +
			strings.Join(problems, "; ") + ". Bring the others back first, or pass --force if you accept that"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := n.seedRecords(ctx); err != nil {
		n.writeErr(w, err)
		return
	}
	if inRaft {
		if err := n.repl.RemoveServer(id); err != nil {
			n.writeErr(w, err)
			return
		}
	}
	if err := n.putRecord(ctx, recMember+id, nil); err != nil {
		n.writeErr(w, err)
		return
	}
	n.setMembers(slices.DeleteFunc(n.peers(), func(q config.Peer) bool { return q.ID == id }))
	res := cluster.RemoveResult{Removed: id, Voters: left, Warnings: problems}
	if len(left) == 2 && data == 2 {
		res.Warnings = append(res.Warnings, "two voters cannot survive the loss of either: add a witness or a data node (`keel join`)")
	}
	n.log.Info("member removed", "removed", id, "role", p.Role, "voters_left", left, "forced", force && len(problems) > 0)
	writeJSON(w, http.StatusOK, res)
}

func (n *Node) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req cluster.TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "bad token request: "+err.Error())
		return
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil {
		badRequest(w, fmt.Sprintf("ttl %q is not a duration: use e.g. 1h or 30m", req.TTL))
		return
	}
	if !n.leaderReady(w, r) {
		return
	}
	if _, err := n.loadCA(); err != nil {
		writeJSON(w, http.StatusConflict, cluster.ErrorBody{Error: err.Error()})
		return
	}
	caPEM, err := os.ReadFile(n.cfg.Path(n.cfg.TLS.CA))
	if err != nil {
		n.writeErr(w, err)
		return
	}
	fp, err := tlsutil.CAFingerprint(caPEM)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	tok, rec, err := join.New(req.Purpose, ttl, fp, req.Note, time.Now())
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	if err := n.putRecord(r.Context(), recToken+rec.ID, rec); err != nil {
		n.writeErr(w, err)
		return
	}
	info := tokenInfo(rec)
	info.Token = tok.String()
	writeJSON(w, http.StatusOK, info)
}

func tokenInfo(r join.Record) cluster.TokenInfo {
	return cluster.TokenInfo{ID: r.ID, Purpose: r.Purpose, Created: r.Created, Expires: r.Expires, Expired: time.Now().After(r.Expires), Note: r.Note}
}

func (n *Node) handleListTokens(w http.ResponseWriter, r *http.Request) {
	if !n.leaderReady(w, r) {
		return
	}
	recs, err := n.repl.Store().ClusterRecords(recToken)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	out := []cluster.TokenInfo{}
	for _, rec := range recs {
		var t join.Record
		if json.Unmarshal(rec.Value, &t) == nil {
			out = append(out, tokenInfo(t))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !n.leaderReady(w, r) {
		return
	}
	rec, ok, err := n.tokenRecord(id)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, cluster.ErrorBody{Error: "no token " + id + "; `keel token list` shows them"})
		return
	}
	if err := n.putRecord(r.Context(), recToken+id, nil); err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenInfo(rec))
}
