package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"

	"keel/internal/backup"
	"keel/internal/cluster"
	"keel/internal/fsstate"
	"keel/internal/replication"
)

// Backups run on the leader: it holds the snapshot a push reads and makes
// the changes a restore writes, and a file:// URL names a directory on its
// machine. Push, verify, restore and prune answer with an NDJSON stream of
// cluster.BackupEvent lines (progress about every second, then the result),
// so that a long operation neither times out nor runs silently; closing the
// connection cancels the operation.

func (n *Node) backupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/volumes/{name}/backups", n.handleBackupPush)
	mux.HandleFunc("POST /v1/backups/state", n.handleStatePush)
	mux.HandleFunc("GET /v1/backups", n.handleBackupList)
	mux.HandleFunc("POST /v1/backups/verify", n.handleBackupVerify)
	mux.HandleFunc("POST /v1/backups/restore", n.handleBackupRestore)
	mux.HandleFunc("POST /v1/backups/prune", n.handleBackupPrune)
}

// storeLocks serializes the pushes and prunes of one backup URL on this
// node: a prune must not delete chunks a running push counts on.
var storeLocks = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

func lockStore(ctx context.Context, url string) (func(), error) {
	storeLocks.Lock()
	ch := storeLocks.m[url]
	if ch == nil {
		ch = make(chan struct{}, 1)
		storeLocks.m[url] = ch
	}
	storeLocks.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// backupStore answers the request itself and returns false unless this node
// leads and the URL names a store.
func (n *Node) backupStore(w http.ResponseWriter, rawURL string) (backup.Store, bool) {
	if !n.repl.IsLeader() {
		id, _ := n.repl.Leader()
		n.writeErr(w, &replication.NotLeaderError{LeaderID: id})
		return nil, false
	}
	if rawURL == "" {
		badRequest(w, "a backup URL is needed, e.g. file:///var/backups/keel")
		return nil, false
	}
	st, err := backup.Open(rawURL)
	if err != nil {
		badRequest(w, err.Error())
		return nil, false
	}
	return st, true
}

// eventStream writes cluster.BackupEvent lines.
type eventStream struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
}

func startStream(w http.ResponseWriter) *eventStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	s := &eventStream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
	_ = s.rc.Flush()
	return s
}

func (s *eventStream) send(ev cluster.BackupEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(ev)
	_ = s.rc.Flush()
}

func (s *eventStream) progress(p backup.Progress) {
	s.send(cluster.BackupEvent{Progress: &cluster.BackupProgress{Op: p.Op, Bytes: p.Bytes, Total: p.Total,
		Uploaded: p.Uploaded, Unchanged: p.Unchanged, Files: p.Files, Elapsed: p.Elapsed.Seconds(), Rate: p.Rate()}})
}

// finish sends the last line: result (nil if none) and err (if any).
func (s *eventStream) finish(result any, err error) {
	ev := cluster.BackupEvent{Result: result, Done: true}
	if err != nil {
		body := cluster.ErrorBody{Error: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			body.Errno = errnoName(errno)
		}
		ev.Error = &body
	}
	s.send(ev)
}

func (n *Node) handleBackupPush(w http.ResponseWriter, r *http.Request) {
	var req cluster.BackupPushRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	vol := r.PathValue("name")
	st, ok := n.backupStore(w, req.To)
	if !ok {
		return
	}
	if _, err := n.fs.Volume(r.Context(), vol); err != nil {
		n.writeErr(w, err)
		return
	}
	n.streamPush(w, r, st, req, vol, func(ctx context.Context, st backup.Store, opts backup.Options) (*backup.PushResult, error) {
		return backup.PushVolume(ctx, n.fs, vol, st, opts)
	})
}

// handleStatePush backs up this node's whole state as a state image, for
// rebuilding a node (seed_from).
func (n *Node) handleStatePush(w http.ResponseWriter, r *http.Request) {
	var req cluster.BackupPushRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	st, ok := n.backupStore(w, req.To)
	if !ok {
		return
	}
	n.streamPush(w, r, st, req, backup.StateVolume, n.pushState)
}

// pushState pins the newest raft snapshot (taking one first) and pushes
// it as a state image. With opts.SkipUnchanged it makes none if the
// previous image is at the same raft index.
func (n *Node) pushState(ctx context.Context, st backup.Store, opts backup.Options) (*backup.PushResult, error) {
	if n.repl.Store() == nil {
		return nil, errNotData
	}
	pin, err := n.repl.PinSnapshot()
	if err != nil {
		return nil, err
	}
	defer pin.Release()
	if p := opts.Previous; opts.SkipUnchanged && p != nil && p.State != nil && p.State.RaftIndex == pin.Index {
		return nil, fmt.Errorf("%w (state image %s, raft index %d)", backup.ErrUnchanged, p.ID, pin.Index)
	}
	return backup.PushState(ctx, st, pin.Dir, backup.StateImage{ClusterID: n.cfg.ClusterID, RaftIndex: pin.Index,
		RaftTerm: pin.Term, Meta: pin.Meta}, opts)
}

// streamPush runs a push to req.To, streaming its progress and result.
// Unless req.Full, files unchanged since the latest backup of the same
// volume are not read again.
func (n *Node) streamPush(w http.ResponseWriter, r *http.Request, st backup.Store, req cluster.BackupPushRequest, vol string,
	push func(context.Context, backup.Store, backup.Options) (*backup.PushResult, error)) {
	ctx := r.Context()
	s := startStream(w)
	unlock, err := lockStore(ctx, req.To)
	if err != nil {
		s.finish(nil, err)
		return
	}
	defer unlock()
	opts := backup.Options{Progress: s.progress}
	if !req.Full {
		if prev, err := backup.Find(ctx, st, "", vol); err == nil {
			opts.Previous = prev
		}
	}
	n.log.Info("backup push started", "volume", vol, "to", redact(req.To))
	res, err := push(ctx, st, opts)
	if err != nil {
		n.log.Warn("backup push failed", "volume", vol, "to", redact(req.To), "err", err)
		s.finish(nil, err)
		return
	}
	n.log.Info("backup push done", "volume", vol, "id", res.ID, "scanned", res.BytesScanned, "unchanged", res.BytesUnchanged,
		"uploaded", res.BytesUploaded, "reused_chunks", res.ChunksReused, "duration", res.Duration)
	t := res.Totals
	s.finish(cluster.BackupPushResult{ID: res.ID, Volume: res.Volume, URL: redact(req.To), Manifest: res.Key,
		Snapshot: res.Snapshot.Name, RaftIndex: res.Snapshot.RaftIndex, SnapshotTime: res.Snapshot.Time,
		Files: t.Files, Dirs: t.Dirs, Symlinks: t.Symlinks, HardLinks: t.HardLinks, Bytes: t.Bytes, DataBytes: t.DataBytes,
		BytesScanned: res.BytesScanned, BytesUnchanged: res.BytesUnchanged, BytesUploaded: res.BytesUploaded,
		ChunksUploaded: res.ChunksUploaded, ChunksReused: res.ChunksReused, ManifestBytes: res.ManifestBytes,
		DurationSeconds: res.Duration.Seconds(), Warnings: res.Warnings}, nil)
}

func (n *Node) handleBackupList(w http.ResponseWriter, r *http.Request) {
	st, ok := n.backupStore(w, r.URL.Query().Get("url"))
	if !ok {
		return
	}
	sums, err := backup.List(r.Context(), st)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	out := []cluster.BackupInfo{}
	for _, s := range sums {
		out = append(out, cluster.BackupInfo{ID: s.ID, Volume: s.Volume, Time: s.Time, RaftIndex: s.RaftIndex,
			Files: s.Files, Bytes: s.Bytes, DataBytes: s.DataBytes, UniqueBytes: s.UniqueBytes, Error: s.Err})
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleBackupVerify(w http.ResponseWriter, r *http.Request) {
	var req cluster.BackupVerifyRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	st, ok := n.backupStore(w, req.URL)
	if !ok {
		return
	}
	s := startStream(w)
	res, err := backup.Verify(r.Context(), st, req.ID, backup.Options{Progress: s.progress})
	if res == nil {
		s.finish(nil, err)
		return
	}
	s.finish(cluster.BackupVerifyResult{Backups: res.Backups, Chunks: res.Chunks, Bytes: res.Bytes, Problems: res.Problems,
		DurationSeconds: res.Duration.Seconds()}, err)
}

func (n *Node) handleBackupRestore(w http.ResponseWriter, r *http.Request) {
	var req cluster.BackupRestoreRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if !fsstate.ValidVolumeName(req.Volume) {
		badRequest(w, "the new volume needs a valid name (letters, digits, '.', '_', '-'; at most 64)")
		return
	}
	st, ok := n.backupStore(w, req.URL)
	if !ok {
		return
	}
	ctx := r.Context()
	if _, err := n.fs.Volume(ctx, req.Volume); err == nil {
		writeJSON(w, http.StatusConflict, cluster.ErrorBody{Errno: "EEXIST",
			Error: "volume " + req.Volume + " exists: restore into a new volume name, or delete it first"})
		return
	}
	s := startStream(w)
	m, err := backup.Find(ctx, st, req.ID, req.From)
	if err != nil {
		s.finish(nil, err)
		return
	}
	n.log.Info("backup restore started", "from", req.URL, "id", m.ID, "volume", req.Volume)
	res, err := backup.Restore(ctx, n.fs, st, m, req.Volume, req.SizeBytes, backup.Options{Progress: s.progress})
	if err != nil {
		n.log.Warn("backup restore failed", "id", m.ID, "volume", req.Volume, "err", err)
		s.finish(nil, err)
		return
	}
	n.log.Info("backup restore done", "id", m.ID, "volume", req.Volume, "bytes", res.BytesWritten, "duration", res.Duration)
	t := res.Totals
	s.finish(cluster.BackupRestoreResult{ID: res.ID, Volume: res.Volume, Restored: res.Restored, SizeBytes: res.SizeLimit,
		Files: t.Files, Dirs: t.Dirs, Symlinks: t.Symlinks, HardLinks: t.HardLinks, BytesWritten: res.BytesWritten,
		DurationSeconds: res.Duration.Seconds()}, nil)
}

func (n *Node) handleBackupPrune(w http.ResponseWriter, r *http.Request) {
	var req cluster.BackupPruneRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	st, ok := n.backupStore(w, req.URL)
	if !ok {
		return
	}
	s := startStream(w)
	unlock, err := lockStore(r.Context(), req.URL)
	if err != nil {
		s.finish(nil, err)
		return
	}
	defer unlock()
	res, err := backup.Prune(r.Context(), st, backup.PruneOptions{KeepLast: req.KeepLast, KeepDaily: req.KeepDaily, DryRun: req.DryRun})
	if err != nil {
		s.finish(nil, err)
		return
	}
	n.log.Info("backup prune done", "url", req.URL, "kept", len(res.Kept), "deleted", len(res.Deleted),
		"chunks_deleted", res.ChunksDeleted, "bytes_freed", res.BytesFreed, "dry_run", req.DryRun)
	s.finish(cluster.BackupPruneResult{Kept: res.Kept, Deleted: res.Deleted, ChunksDeleted: res.ChunksDeleted,
		BytesFreed: res.BytesFreed, DryRun: res.DryRun}, nil)
}
