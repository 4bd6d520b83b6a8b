package join

import (
	"fmt"
	"os"
	"path/filepath"

	"keel/internal/config"
	"keel/internal/tlsutil"
)

// WriteNodeDir writes a joined node's directory and returns its config.
func WriteNodeDir(dir string, req Request, resp *Response) (*config.Config, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := config.Default()
	c.ClusterID = resp.ClusterID
	c.Node = config.NodeConfig{ID: req.ID, Role: req.Role, DataDir: config.NodeDataDir, RaftAddr: req.RaftAddr, AdminAddr: req.AdminAddr, NFSAddr: req.NFSAddr}
	c.Peers = resp.Peers
	if resp.Raft != nil {
		c.Raft = *resp.Raft
	}
	c.TLS = config.TLSFiles{CA: config.FileCACert, Cert: config.FileNodeCert, Key: config.FileNodeKey, Secret: config.FileSecret}
	files := map[string]string{config.FileCACert: resp.CACert, config.FileNodeCert: resp.Cert, config.FileNodeKey: resp.Key, config.FileSecret: resp.Secret}
	if resp.CAKey != "" {
		c.TLS.CAKey = config.FileCAKey
		files[config.FileCAKey] = resp.CAKey
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("join: the cluster's answer makes an invalid node.yaml:\n%w", err)
	}
	for name, data := range files {
		if err := tlsutil.WriteFile0600(filepath.Join(dir, name), []byte(data)); err != nil {
			return nil, err
		}
	}
	header := fmt.Sprintf("keel node %s (%s) of cluster %s, made by `keel join`.\nPaths are relative to this file's directory.", req.ID, req.Role, resp.ClusterID)
	p := filepath.Join(dir, config.FileNodeConfig)
	if err := config.WriteWithHeader(p, header, &c); err != nil {
		return nil, err
	}
	return config.Load(p)
}

// WriteClientDir writes client.yaml and its certificates; it replaces an
// older client.yaml of the same directory.
func WriteClientDir(dir string, resp *Response) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cc := &config.Client{ClusterID: resp.ClusterID, Peers: resp.Peers,
		TLS: config.TLSFiles{CA: config.FileCACert, Cert: config.FileClientCert, Key: config.FileClientKey}}
	if err := cc.Validate(); err != nil {
		return "", fmt.Errorf("tunnel join: the cluster's answer makes an invalid client.yaml:\n%w", err)
	}
	for name, data := range map[string]string{config.FileCACert: resp.CACert, config.FileClientCert: resp.Cert, config.FileClientKey: resp.Key} {
		if err := tlsutil.WriteFile0600(filepath.Join(dir, name), []byte(data)); err != nil {
			return "", err
		}
	}
	p := filepath.Join(dir, config.FileClientConfig)
	header := fmt.Sprintf("keel client configuration for cluster %s, made by `keel tunnel join`.\nPaths are relative to this file's directory.", resp.ClusterID)
	return p, config.WriteWithHeader(p, header, cc)
}
