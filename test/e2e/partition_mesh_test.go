package e2e

import (
	"fmt"
	"sort"
	"testing"
)

// partitionMesh routes every node's raft traffic to every other node
// through its own fault proxy: for each ordered pair (from, to) a proxy to
// to's real raft address, which from's node.yaml lists as to's raft_addr
// (each node dials its peers at the addresses of its own config; its own
// entry keeps its real address). A link, a node or any set of nodes can then
// be cut off in either direction while the processes run on.
type partitionMesh struct {
	t     *testing.T
	links map[[2]string]*faultProxy // (from, to) → proxy
}

// newPartitionMesh builds the proxies for an initialized, not yet started
// cluster and rewrites the peers of every node.yaml.
func newPartitionMesh(t *testing.T, c *Cluster) *partitionMesh {
	t.Helper()
	pm := &partitionMesh{t: t, links: map[[2]string]*faultProxy{}}
	for _, from := range c.Members {
		for _, to := range c.Members {
			if from != to {
				pm.links[[2]string{from.ID, to.ID}] = newFaultProxy(t, to.RaftAddr)
			}
		}
		editYAML(t, from.Config, func(doc map[string]any) {
			peers, ok := doc["peers"].([]any)
			if !ok {
				t.Fatalf("%s: peers is %T, want a list", from.Config, doc["peers"])
			}
			for _, pe := range peers {
				p, ok := pe.(map[string]any)
				if !ok {
					t.Fatalf("%s: a peer is %T, want a mapping", from.Config, pe)
				}
				id, _ := p["id"].(string)
				if id == from.ID {
					continue
				}
				link, ok := pm.links[[2]string{from.ID, id}]
				if !ok {
					t.Fatalf("%s lists peer %q, which is not a member", from.Config, id)
				}
				p["raft_addr"] = link.Addr
			}
		})
	}
	return pm
}

// isolate sets every link into and out of id to mode.
func (pm *partitionMesh) isolate(id string, mode faultMode) {
	for k, p := range pm.links {
		if k[0] == id || k[1] == id {
			p.SetMode(mode)
		}
	}
}

// heal sets every link to pass.
func (pm *partitionMesh) heal() {
	for _, p := range pm.links {
		p.SetMode(modePass)
	}
}

// stats describes every link, sorted, for the log.
func (pm *partitionMesh) stats() string {
	var keys [][2]string
	for k := range pm.links {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("\n  %s→%s %s", k[0], k[1], pm.links[k].Stats())
	}
	return s
}
