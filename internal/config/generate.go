package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"keel/internal/tlsutil"
)

// Names of the files in a cluster directory made by Generate:
//
//	ca.crt ca.key secret client.crt client.key client.yaml
//	nodes/<id>/{node.crt,node.key,ca.crt,secret,node.yaml}
const (
	FileCACert       = "ca.crt"
	FileCAKey        = "ca.key"
	FileSecret       = "secret"
	FileClientCert   = "client.crt"
	FileClientKey    = "client.key"
	FileClientConfig = "client.yaml"
	DirNodes         = "nodes"
	FileNodeCert     = "node.crt"
	FileNodeKey      = "node.key"
	FileNodeConfig   = "node.yaml"
	// FileJoinTokens, in a data node's directory, holds the records (never
	// the secrets) of the join tokens `keel init` printed; the first leader
	// imports them into the replicated state.
	FileJoinTokens = "join-tokens.json"
	// NodeDataDir is the data_dir written into node.yaml, relative to the
	// node's directory.
	NodeDataDir = "data"
)

// Errors of Generate and LoadLayout.
var (
	ErrClusterExists = errors.New("config: a cluster already exists there")
	ErrNoCluster     = errors.New("config: no cluster there")
)

// InitSpec describes a cluster for Generate.
type InitSpec struct {
	Dir        string     // where to write; created (0700) if missing
	ClusterID  string     // empty: 16 random hex digits
	Nodes      []NodeSpec // every member, in order
	ClientName string     // name in the client certificate; default "client"
	// CAOnDataNodes also puts the CA key into every data node's directory
	// (tls.ca_key) so that the leader can sign the certificates of machines
	// that join with a token. Witnesses and clients never get it.
	CAOnDataNodes bool
	// RestoreFrom (URL@ID of a state image) makes a cluster rebuilt from
	// another cluster's backup: written as restore_from into every
	// node.yaml, and no node bootstraps (the data nodes' seeded snapshot
	// holds the configuration).
	RestoreFrom string
}

// NodeSpec describes one member for Generate.
type NodeSpec struct {
	ID        string
	Role      string // data (default) or witness
	Host      string // IP or DNS name the others reach it at; default 127.0.0.1
	RaftPort  int
	AdminPort int
	NFSPort   int // data nodes: the NFS port (0: no NFS service)
}

// Layout locates the files of a generated cluster. Paths are absolute.
type Layout struct {
	Dir          string
	ClusterID    string
	CACert       string
	CAKey        string // empty if ca.key is not there (LoadLayout)
	Secret       string
	ClientConfig string
	NodeIDs      []string          // in cluster order
	NodeConfigs  map[string]string // node id → nodes/<id>/node.yaml
}

// NodeDir returns the self-contained directory of node id.
func (l *Layout) NodeDir(id string) string { return filepath.Join(l.Dir, DirNodes, id) }

// Generate makes a new cluster in spec.Dir: a CA, a cluster secret, a client
// certificate and client.yaml, and for each node a directory nodes/<id>
// holding everything that node needs (certificate, key, CA certificate,
// secret, node.yaml with bootstrap on), ready to be copied to its machine.
// Files are 0600 and directories 0700. It refuses to touch a directory that
// already holds a cluster, and removes what it wrote if it fails.
func Generate(spec InitSpec) (*Layout, error) {
	if spec.Dir == "" {
		return nil, errors.New("config: generate: no directory given: pass one, e.g. --dir ./keel-cluster")
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	if spec.ClusterID == "" {
		if spec.ClusterID, err = randomHex(8); err != nil {
			return nil, err
		}
	}
	if spec.ClientName == "" {
		spec.ClientName = "client"
	}
	if err := tlsutil.CheckClientName(spec.ClientName); err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	nodes, client, err := buildConfigs(spec)
	if err == nil && spec.CAOnDataNodes {
		for _, c := range nodes {
			if c.Node.Role == RoleData {
				c.TLS.CAKey = FileCAKey
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := refuseExisting(dir); err != nil {
		return nil, err
	}

	w := &writer{}
	l, err := w.generate(dir, spec, nodes, client)
	if err != nil {
		w.undo()
		return nil, err
	}
	return l, nil
}

// buildConfigs makes and validates the node and client configs of spec.
func buildConfigs(spec InitSpec) ([]*Config, *Client, error) {
	if len(spec.Nodes) == 0 {
		return nil, nil, errors.New("config: generate: no nodes given: describe 1 data node, 3 data nodes, or 2 data nodes and a witness")
	}
	peers := make([]Peer, len(spec.Nodes))
	for i, n := range spec.Nodes {
		if n.Role == "" {
			n.Role = RoleData
		}
		if n.Host == "" {
			n.Host = "127.0.0.1"
		}
		peers[i] = Peer{
			ID:        n.ID,
			Role:      n.Role,
			RaftAddr:  net.JoinHostPort(n.Host, strconv.Itoa(n.RaftPort)),
			AdminAddr: net.JoinHostPort(n.Host, strconv.Itoa(n.AdminPort)),
		}
		if n.NFSPort > 0 && n.Role == RoleData {
			peers[i].NFSAddr = net.JoinHostPort(n.Host, strconv.Itoa(n.NFSPort))
		}
	}
	tls := TLSFiles{CA: FileCACert, Cert: FileNodeCert, Key: FileNodeKey, Secret: FileSecret}
	nodes := make([]*Config, len(peers))
	for i, p := range peers {
		c := Default()
		c.ClusterID = spec.ClusterID
		c.Node = NodeConfig{ID: p.ID, Role: p.Role, DataDir: NodeDataDir, RaftAddr: p.RaftAddr, AdminAddr: p.AdminAddr, NFSAddr: p.NFSAddr}
		c.Peers = peers
		c.Bootstrap = spec.RestoreFrom == ""
		c.RestoreFrom = spec.RestoreFrom
		c.TLS = tls
		if err := c.Validate(); err != nil {
			return nil, nil, fmt.Errorf("config: generate: node %d (%q) would have an invalid node.yaml:\n%w", i+1, p.ID, err)
		}
		nodes[i] = &c
	}
	client := &Client{
		ClusterID: spec.ClusterID,
		Peers:     peers,
		TLS:       TLSFiles{CA: FileCACert, Cert: FileClientCert, Key: FileClientKey},
	}
	if err := client.Validate(); err != nil {
		return nil, nil, fmt.Errorf("config: generate: client.yaml would be invalid:\n%w", err)
	}
	return nodes, client, nil
}

// refuseExisting fails if dir holds any file of a cluster.
func refuseExisting(dir string) error {
	for _, name := range []string{FileCAKey, FileCACert, FileSecret, FileClientConfig, DirNodes} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s exists: to use that cluster, run its nodes with `keel serve --config %s` (or re-run `keel up` with the same --dir); to make another, choose a new --dir; to start over, delete %s first, which destroys the cluster's identity and data access",
				ErrClusterExists, p, filepath.Join(dir, DirNodes, "<id>", FileNodeConfig), dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("config: generate: %w", err)
		}
	}
	return nil
}

// writer writes files and directories, remembering them so that a failed
// Generate leaves nothing behind.
type writer struct{ made []string }

func (w *writer) mkdir(p string) error {
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared while generating: is another `keel init` running?", ErrClusterExists, p)
		}
		return fmt.Errorf("config: generate: %w", err)
	}
	w.made = append(w.made, p)
	return nil
}

func (w *writer) file(p string, data []byte) error {
	w.made = append(w.made, p)
	if err := tlsutil.WriteFile0600(p, data); err != nil {
		return fmt.Errorf("config: generate: %w", err)
	}
	return nil
}

func (w *writer) yaml(p, header string, v any) error {
	w.made = append(w.made, p)
	return writeYAML(p, header, v)
}

// undo removes what was made, newest first.
func (w *writer) undo() {
	for i := len(w.made) - 1; i >= 0; i-- {
		_ = os.Remove(w.made[i])
	}
}

func (w *writer) generate(dir string, spec InitSpec, nodes []*Config, client *Client) (*Layout, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("config: generate: %w", err)
		}
		if err := w.mkdir(dir); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	// Claim the directory: Mkdir fails if another init got there first.
	nodesDir := filepath.Join(dir, DirNodes)
	if err := w.mkdir(nodesDir); err != nil {
		return nil, err
	}

	ca, err := tlsutil.NewCA(spec.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	secretHex, err := randomHex(SecretSize)
	if err != nil {
		return nil, err
	}
	secret := []byte(secretHex + "\n")

	l := &Layout{
		Dir:          dir,
		ClusterID:    spec.ClusterID,
		CACert:       filepath.Join(dir, FileCACert),
		CAKey:        filepath.Join(dir, FileCAKey),
		Secret:       filepath.Join(dir, FileSecret),
		ClientConfig: filepath.Join(dir, FileClientConfig),
		NodeConfigs:  map[string]string{},
	}
	if err := w.file(l.CAKey, caKey); err != nil {
		return nil, err
	}
	if err := w.file(l.CACert, ca.CertPEM()); err != nil {
		return nil, err
	}
	if err := w.file(l.Secret, secret); err != nil {
		return nil, err
	}

	certPEM, keyPEM, err := ca.IssueClient(spec.ClientName)
	if err != nil {
		return nil, fmt.Errorf("config: generate: %w", err)
	}
	if err := w.file(filepath.Join(dir, FileClientCert), certPEM); err != nil {
		return nil, err
	}
	if err := w.file(filepath.Join(dir, FileClientKey), keyPEM); err != nil {
		return nil, err
	}
	header := fmt.Sprintf("keel client configuration for cluster %s, made by `keel init`.\nPaths are relative to this file's directory.", spec.ClusterID)
	if err := w.yaml(l.ClientConfig, header, client); err != nil {
		return nil, err
	}

	for _, c := range nodes {
		nd := l.NodeDir(c.Node.ID)
		if err := w.mkdir(nd); err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.Node.RaftAddr)
		certPEM, keyPEM, err := ca.IssueNode(c.Node.ID, []string{host})
		if err != nil {
			return nil, fmt.Errorf("config: generate: %w", err)
		}
		for _, f := range []struct {
			name string
			data []byte
		}{{FileNodeCert, certPEM}, {FileNodeKey, keyPEM}, {FileCACert, ca.CertPEM()}, {FileSecret, secret}, {c.TLS.CAKey, caKey}} {
			if f.name == "" {
				continue
			}
			if err := w.file(filepath.Join(nd, f.name), f.data); err != nil {
				return nil, err
			}
		}
		header := fmt.Sprintf("keel node %s (%s) of cluster %s, made by `keel init`.\n"+
			"This directory is self-contained: copy it to the node's machine and run\n"+
			"  keel serve --config %s\n"+
			"Paths are relative to this file's directory.", c.Node.ID, c.Node.Role, spec.ClusterID, FileNodeConfig)
		p := filepath.Join(nd, FileNodeConfig)
		if err := w.yaml(p, header, c); err != nil {
			return nil, err
		}
		l.NodeIDs = append(l.NodeIDs, c.Node.ID)
		l.NodeConfigs[c.Node.ID] = p
	}
	return l, nil
}

// LoadLayout finds the cluster generated in dir. Nodes are listed in the
// order of client.yaml's peers, then any other node directories by name;
// node directories that were moved away are left out.
func LoadLayout(dir string) (*Layout, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	clientPath := filepath.Join(dir, FileClientConfig)
	if _, err := os.Stat(clientPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s: run `keel init --dir %s` (or `keel up`) to make a cluster, or pass the directory `keel init` wrote", ErrNoCluster, dir, FileClientConfig, dir)
	}
	client, err := LoadClient(clientPath)
	if err != nil {
		return nil, err
	}
	l := &Layout{
		Dir:          dir,
		ClusterID:    client.ClusterID,
		CACert:       filepath.Join(dir, FileCACert),
		Secret:       filepath.Join(dir, FileSecret),
		ClientConfig: clientPath,
		NodeConfigs:  map[string]string{},
	}
	if _, err := os.Stat(filepath.Join(dir, FileCAKey)); err == nil {
		l.CAKey = filepath.Join(dir, FileCAKey)
	}
	add := func(id string) {
		if _, seen := l.NodeConfigs[id]; seen {
			return
		}
		p := filepath.Join(dir, DirNodes, id, FileNodeConfig)
		if _, err := os.Stat(p); err == nil {
			l.NodeIDs = append(l.NodeIDs, id)
			l.NodeConfigs[id] = p
		}
	}
	for _, p := range client.Peers {
		if tlsutil.CheckNodeID(p.ID) == nil {
			add(p.ID)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, DirNodes))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config: %w", err)
	}
	var others []string
	for _, e := range ents {
		if e.IsDir() && tlsutil.CheckNodeID(e.Name()) == nil {
			others = append(others, e.Name())
		}
	}
	slices.Sort(others)
	for _, id := range others {
		add(id)
	}
	return l, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("config: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
