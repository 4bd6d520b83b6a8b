package node

import (
	"bufio"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"keel/internal/cluster"
	"keel/internal/replication"
	"keel/internal/tlsutil"
)

// TunnelUpgrade is the HTTP Upgrade token with which `keel tunnel` turns an
// admin-API connection (mutual TLS) into a stream of NFS/MOUNT RPC records.
const TunnelUpgrade = "keel-nfs/1"

// tunnels tracks the tunnel connections this node serves, for status.
type tunnels struct {
	mu    sync.Mutex
	next  int
	conns map[int]cluster.TunnelInfo
}

func (t *tunnels) add(info cluster.TunnelInfo) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[int]cluster.TunnelInfo{}
	}
	t.next++
	t.conns[t.next] = info
	return t.next
}

func (t *tunnels) remove(id int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, id)
}

func (t *tunnels) list() []cluster.TunnelInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]cluster.TunnelInfo, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// handleTunnel upgrades a request from `keel tunnel` to an RPC stream served
// by this node's NFS server. Only the leader accepts; others answer with
// the leader's address so that the tunnel goes there.
func (n *Node) handleTunnel(w http.ResponseWriter, r *http.Request) {
	if n.nfs == nil {
		badRequest(w, "this node serves no NFS (no nfs_addr; is it a witness?)")
		return
	}
	if r.Header.Get("Upgrade") != TunnelUpgrade {
		badRequest(w, "expected Upgrade: "+TunnelUpgrade)
		return
	}
	if !n.repl.IsLeader() {
		id, _ := n.repl.Leader()
		n.writeErr(w, &replication.NotLeaderError{LeaderID: id})
		return
	}
	who := "unknown"
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if id, err := tlsutil.IdentityOf(r.TLS.PeerCertificates[0]); err == nil {
			who = id.Name
		}
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		badRequest(w, "connection cannot be upgraded")
		return
	}
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", TunnelUpgrade)
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{})
	id := n.tunnels.add(cluster.TunnelInfo{Client: who, Remote: conn.RemoteAddr().String(), Since: time.Now()})
	defer n.tunnels.remove(id)
	n.log.Info("tunnel connected", "client", who, "remote", conn.RemoteAddr().String())
	served := make(chan struct{})
	go n.dropTunnelIfDeposed(conn, served)
	n.nfs.ServeConn(&bufferedConn{Conn: conn, r: brw.Reader})
	close(served)
	n.log.Info("tunnel disconnected", "client", who, "remote", conn.RemoteAddr().String())
}

// dropTunnelIfDeposed closes a tunnel connection as soon as this node is no
// longer the leader, until served is closed. watchActive's CloseConnections
// alone leaves a gap: a tunnel accepted just before the node stopped leading
// may be registered with the NFS server only after that sweep, and would
// then be served by a non-leader, answering every call "try again", for as
// long as the tunnel keeps it (the tunnel leaves a node only when the
// connection drops or stops answering).
func (n *Node) dropTunnelIfDeposed(conn net.Conn, served <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if !n.repl.IsLeader() {
			n.log.Info("no longer the leader; dropping a tunnel connection", "remote", conn.RemoteAddr().String())
			_ = conn.Close()
			return
		}
		select {
		case <-served:
			return
		case <-t.C:
		}
	}
}

// bufferedConn reads through the buffer the HTTP server may already have
// filled.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
