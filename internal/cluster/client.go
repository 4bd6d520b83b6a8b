package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"keel/internal/config"
	"keel/internal/tlsutil"
)

// APIError is an error response from a node.
type APIError struct {
	Status int
	Body   ErrorBody
}

func (e *APIError) Error() string {
	if e.Body.Error != "" {
		return e.Body.Error
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

// ErrUnreachable says no node of the cluster answered.
var ErrUnreachable = errors.New("cluster: no node answered")

// Client talks to a cluster's admin APIs over mutual TLS. It sends requests
// that need the leader to the last leader it heard of, follows the hints of
// nodes that are not the leader, and waits out elections.
type Client struct {
	ClusterID string
	Peers     []config.Peer
	http      *http.Client

	mu     sync.Mutex
	leader string // admin address
}

// NewClient makes a client from a client config (or a node config turned
// into one with FromNode).
func NewClient(cc *config.Client) (*Client, error) {
	tc, err := TLSConfig(cc)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: 60 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second}
	return &Client{ClusterID: cc.ClusterID, Peers: cc.Peers, http: &http.Client{Transport: tr}}, nil
}

// TLSConfig is the mutual-TLS client configuration of a client config.
func TLSConfig(cc *config.Client) (*tls.Config, error) {
	path := func(p string) string { return resolve(cc.Dir, p) }
	ca, cert, key, err := tlsutil.LoadFiles(path(cc.TLS.CA), path(cc.TLS.Cert), path(cc.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	tc, err := tlsutil.ClientConfig(ca, cert, key, cc.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return tc, nil
}

// FromNode turns a node's config into a client config using the node's own
// certificate.
func FromNode(cfg *config.Config) *config.Client {
	return &config.Client{ClusterID: cfg.ClusterID, Peers: cfg.Peers, Dir: cfg.Dir,
		TLS: config.TLSFiles{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}}
}

func resolve(dir, p string) string {
	if p == "" || strings.HasPrefix(p, "/") || dir == "" {
		return p
	}
	return dir + "/" + p
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Do sends a request to the leader and decodes a JSON answer into out (if
// not nil). body, if not nil, returns a fresh reader for each attempt.
func (c *Client) Do(ctx context.Context, method, path string, body func() io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cluster: decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Stream sends a request to the leader and returns the successful response
// for the caller to read and close.
func (c *Client) Stream(ctx context.Context, method, path string, body func() io.Reader) (*http.Response, error) {
	return c.send(ctx, method, path, body)
}

func (c *Client) targets() []string {
	c.mu.Lock()
	first := c.leader
	peers := c.Peers
	c.mu.Unlock()
	var out []string
	if first != "" {
		out = append(out, first)
	}
	for _, p := range peers {
		if p.AdminAddr != first && p.Role != config.RoleWitness {
			out = append(out, p.AdminAddr)
		}
	}
	for _, p := range peers {
		if p.AdminAddr != first && p.Role == config.RoleWitness {
			out = append(out, p.AdminAddr)
		}
	}
	return out
}

func (c *Client) send(ctx context.Context, method, path string, body func() io.Reader) (*http.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Bound the search for a leader, not the reading of the answer: the
		// deadline ends when the caller closes the body.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		timer := time.AfterFunc(30*time.Second, cancel)
		resp, err := c.sendCtx(ctx, method, path, body)
		if err != nil || !timer.Stop() {
			cancel()
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("%w: no answer within 30s", ErrUnreachable)
			}
			return nil, err
		}
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	return c.sendCtx(ctx, method, path, body)
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (c *Client) sendCtx(ctx context.Context, method, path string, body func() io.Reader) (*http.Response, error) {
	var lastErr error
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		queue := c.targets()
		tried := map[string]bool{}
		for len(queue) > 0 {
			addr := queue[0]
			queue = queue[1:]
			if tried[addr] {
				continue
			}
			tried[addr] = true
			resp, err := c.once(ctx, method, addr, path, body)
			if err != nil {
				lastErr = err
				if ctx.Err() != nil {
					return nil, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
				}
				continue
			}
			if resp.StatusCode < 300 {
				c.mu.Lock()
				c.leader = addr
				c.mu.Unlock()
				return resp, nil
			}
			apiErr := &APIError{Status: resp.StatusCode}
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&apiErr.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusMisdirectedRequest:
				if apiErr.Body.LeaderAdmin != "" && !tried[apiErr.Body.LeaderAdmin] {
					queue = append([]string{apiErr.Body.LeaderAdmin}, queue...)
				}
				lastErr = apiErr
				continue
			case http.StatusServiceUnavailable:
				lastErr = apiErr
				continue
			}
			return nil, apiErr
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			var apiErr *APIError
			if errors.As(lastErr, &apiErr) {
				return nil, lastErr
			}
			return nil, fmt.Errorf("%w (%d nodes tried): %v", ErrUnreachable, len(tried), lastErr)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (c *Client) once(ctx context.Context, method, addr, path string, body func() io.Reader) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = body()
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, rd)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// NodeStatus asks one node for its status.
func (c *Client) NodeStatus(ctx context.Context, adminAddr string) (NodeStatus, error) {
	var st NodeStatus
	resp, err := c.once(ctx, http.MethodGet, adminAddr, "/v1/status", nil)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster: %s answered HTTP %d", adminAddr, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// GetLocal sends a GET to one given node (no leader-following) and decodes
// the JSON answer.
func (c *Client) GetLocal(ctx context.Context, adminAddr, path string, out any) error {
	resp, err := c.once(ctx, http.MethodGet, adminAddr, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		apiErr := &APIError{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&apiErr.Body)
		return apiErr
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Volumes lists the volumes.
func (c *Client) Volumes(ctx context.Context) ([]VolumeInfo, error) {
	var v []VolumeInfo
	return v, c.Do(ctx, http.MethodGet, "/v1/volumes", nil, &v)
}

func jsonBody(v any) func() io.Reader {
	b, _ := json.Marshal(v)
	return func() io.Reader { return bytes.NewReader(b) }
}

// CreateVolume creates a volume.
func (c *Client) CreateVolume(ctx context.Context, name string, size uint64) (VolumeInfo, error) {
	var v VolumeInfo
	return v, c.Do(ctx, http.MethodPost, "/v1/volumes", jsonBody(VolumeRequest{Name: name, SizeBytes: size}), &v)
}

// ResizeVolume changes a volume's size limit.
func (c *Client) ResizeVolume(ctx context.Context, name string, size uint64) (VolumeInfo, error) {
	var v VolumeInfo
	return v, c.Do(ctx, http.MethodPatch, "/v1/volumes/"+url.PathEscape(name), jsonBody(VolumeRequest{SizeBytes: size}), &v)
}

// SetExport replaces a volume's export settings.
func (c *Client) SetExport(ctx context.Context, name string, e ExportInfo) (VolumeInfo, error) {
	var v VolumeInfo
	return v, c.Do(ctx, http.MethodPut, "/v1/volumes/"+url.PathEscape(name)+"/export", jsonBody(e), &v)
}

// DeleteVolume deletes a volume.
func (c *Client) DeleteVolume(ctx context.Context, name string, force bool) error {
	return c.Do(ctx, http.MethodDelete, fmt.Sprintf("/v1/volumes/%s?force=%t", url.PathEscape(name), force), nil, nil)
}

func filePath(vol, path string) string {
	return "/v1/files/" + url.PathEscape(vol) + "/" + strings.TrimPrefix((&url.URL{Path: path}).EscapedPath(), "/")
}

// PutFile writes data to vol:path, creating it (and with mkdirs its parent
// directories), replacing its contents.
func (c *Client) PutFile(ctx context.Context, vol, path string, data []byte, mkdirs bool) error {
	return c.Do(ctx, http.MethodPut, filePath(vol, path)+fmt.Sprintf("?truncate=1&mkdirs=%t", mkdirs),
		func() io.Reader { return bytes.NewReader(data) }, nil)
}

// GetFile reads vol:path whole from the leader.
func (c *Client) GetFile(ctx context.Context, vol, path string) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, filePath(vol, path), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// FileSum returns the SHA-256 of vol:path as stored on one given node.
func (c *Client) FileSum(ctx context.Context, adminAddr, vol, path string) (string, error) {
	var out struct {
		SHA256 string `json:"sha256"`
	}
	err := c.GetLocal(ctx, adminAddr, filePath(vol, path)+"?local=1&sum=sha256", &out)
	return out.SHA256, err
}

// List lists a directory.
func (c *Client) List(ctx context.Context, vol, path string) ([]DirEntry, error) {
	var out []DirEntry
	return out, c.Do(ctx, http.MethodGet, filePath(vol, path), nil, &out)
}

// Remove removes a file or an empty directory.
func (c *Client) Remove(ctx context.Context, vol, path string) error {
	return c.Do(ctx, http.MethodDelete, filePath(vol, path), nil, nil)
}

// Hash returns one data node's state digest.
func (c *Client) Hash(ctx context.Context, adminAddr string) (StateHash, error) {
	var h StateHash
	return h, c.GetLocal(ctx, adminAddr, "/v1/hash", &h)
}

// CreateSnapshot snapshots a volume.
func (c *Client) CreateSnapshot(ctx context.Context, vol, name string) (SnapshotInfo, error) {
	var s SnapshotInfo
	return s, c.Do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(vol)+"/snapshots", jsonBody(SnapshotRequest{Name: name}), &s)
}

// Snapshots lists snapshots (of one volume, or all when vol is "").
func (c *Client) Snapshots(ctx context.Context, vol string) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	return out, c.Do(ctx, http.MethodGet, "/v1/snapshots?volume="+url.QueryEscape(vol), nil, &out)
}

// DeleteSnapshot deletes a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, vol, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(vol)+"/snapshots/"+url.PathEscape(name), nil, nil)
}

// CloneVolume makes volume to from vol@snap.
func (c *Client) CloneVolume(ctx context.Context, vol, snap, to string, size uint64) (VolumeInfo, error) {
	var v VolumeInfo
	return v, c.Do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(vol)+"/clone", jsonBody(CloneRequest{Snapshot: snap, To: to, SizeBytes: size}), &v)
}

// RevertVolume puts vol@snap back into vol.
func (c *Client) RevertVolume(ctx context.Context, vol, snap string, force bool) (VolumeInfo, error) {
	var v VolumeInfo
	return v, c.Do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(vol)+"/revert", jsonBody(RevertRequest{Snapshot: snap, Force: force}), &v)
}

// streamBackup sends a backup operation to the leader and reads its NDJSON
// answer: progress lines go to progress (if not nil), the result into out.
func (c *Client) streamBackup(ctx context.Context, path string, req any, progress func(BackupProgress), out any) error {
	resp, err := c.Stream(ctx, http.MethodPost, path, jsonBody(req))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		ev := BackupEvent{Result: out}
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("cluster: the leader's answer to POST %s broke off (it stopped, or lost leadership; the operation did not finish): %w", path, err)
		}
		if ev.Progress != nil && progress != nil {
			progress(*ev.Progress)
		}
		if ev.Error != nil {
			return &APIError{Status: resp.StatusCode, Body: *ev.Error}
		}
		if ev.Done {
			return nil
		}
	}
}

// BackupPush backs volume vol up to the backup URL to (on the leader).
func (c *Client) BackupPush(ctx context.Context, vol, to string, progress func(BackupProgress)) (BackupPushResult, error) {
	return c.BackupPushWith(ctx, vol, BackupPushRequest{To: to}, progress)
}

// BackupPushWith is BackupPush with every option of the request.
func (c *Client) BackupPushWith(ctx context.Context, vol string, req BackupPushRequest, progress func(BackupProgress)) (BackupPushResult, error) {
	var out BackupPushResult
	return out, c.streamBackup(ctx, "/v1/volumes/"+url.PathEscape(vol)+"/backups", req, progress, &out)
}

// StatePush backs up the leader's whole state as a state image, from which
// a data node that lost its disk is rebuilt (seed_from).
func (c *Client) StatePush(ctx context.Context, req BackupPushRequest, progress func(BackupProgress)) (BackupPushResult, error) {
	var out BackupPushResult
	return out, c.streamBackup(ctx, "/v1/backups/state", req, progress, &out)
}

// Backups lists the backups at a backup URL.
func (c *Client) Backups(ctx context.Context, backupURL string) ([]BackupInfo, error) {
	var out []BackupInfo
	return out, c.Do(ctx, http.MethodGet, "/v1/backups?url="+url.QueryEscape(backupURL), nil, &out)
}

// BackupVerify reads back every object of backup id ("": of every backup)
// and checks it. Problems found come back in the result and as the error.
func (c *Client) BackupVerify(ctx context.Context, backupURL, id string, progress func(BackupProgress)) (BackupVerifyResult, error) {
	var out BackupVerifyResult
	return out, c.streamBackup(ctx, "/v1/backups/verify", BackupVerifyRequest{URL: backupURL, ID: id}, progress, &out)
}

// BackupRestore restores a backup into a new volume.
func (c *Client) BackupRestore(ctx context.Context, req BackupRestoreRequest, progress func(BackupProgress)) (BackupRestoreResult, error) {
	var out BackupRestoreResult
	return out, c.streamBackup(ctx, "/v1/backups/restore", req, progress, &out)
}

// BackupPrune deletes the backups req does not keep and the data only they
// used.
func (c *Client) BackupPrune(ctx context.Context, req BackupPruneRequest) (BackupPruneResult, error) {
	var out BackupPruneResult
	return out, c.streamBackup(ctx, "/v1/backups/prune", req, nil, &out)
}
