package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"keel/internal/cluster"
	"keel/internal/fsstate"
	"keel/internal/replication"
	"keel/internal/version"
)

// routes is the admin API. Every route needs a certificate from this
// cluster's CA (the TLS config requires and verifies one).
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("GET /v1/volumes", n.handleVolumes)
	mux.HandleFunc("POST /v1/volumes", n.handleCreateVolume)
	mux.HandleFunc("PATCH /v1/volumes/{name}", n.handleResizeVolume)
	mux.HandleFunc("DELETE /v1/volumes/{name}", n.handleDeleteVolume)
	mux.HandleFunc("PUT /v1/volumes/{name}/export", n.handleSetExport)
	mux.HandleFunc("POST /v1/volumes/{name}/snapshots", n.handleCreateSnapshot)
	mux.HandleFunc("DELETE /v1/volumes/{name}/snapshots/{snap}", n.handleDeleteSnapshot)
	mux.HandleFunc("GET /v1/snapshots", n.handleListSnapshots)
	mux.HandleFunc("POST /v1/volumes/{name}/clone", n.handleClone)
	mux.HandleFunc("POST /v1/volumes/{name}/revert", n.handleRevert)
	mux.HandleFunc("PUT /v1/files/{vol}/{path...}", n.handlePutFile)
	mux.HandleFunc("GET /v1/files/{vol}/{path...}", n.handleGetFile)
	mux.HandleFunc("DELETE /v1/files/{vol}/{path...}", n.handleDeleteFile)
	mux.HandleFunc("GET /v1/hash", n.handleHash)
	mux.HandleFunc("GET /v1/tunnel", n.handleTunnel)
	mux.HandleFunc("POST /v1/transfer", n.handleTransfer)
	mux.HandleFunc("POST /v1/raft-snapshot", n.handleRaftSnapshot)
	n.backupRoutes(mux)
	n.joinRoutes(mux)
	mux.Handle("GET /metrics", n.metrics.Handler())
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeErr maps an error to a status code and an ErrorBody.
func (n *Node) writeErr(w http.ResponseWriter, err error) {
	body := cluster.ErrorBody{Error: err.Error()}
	code := http.StatusInternalServerError
	var nl *replication.NotLeaderError
	var errno syscall.Errno
	switch {
	case errors.As(err, &nl):
		code = http.StatusMisdirectedRequest
		body.LeaderID = nl.LeaderID
		for _, p := range n.peers() {
			if p.ID == nl.LeaderID {
				body.LeaderAdmin = p.AdminAddr
			}
		}
		if nl.LeaderID == "" {
			code = http.StatusServiceUnavailable
		}
	case errors.Is(err, replication.ErrUnknownOutcome):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.As(err, &errno):
		body.Errno = errnoName(errno)
		if err == error(errno) {
			body.Error = errnoText(errno)
		}
		switch errno {
		case syscall.ENOENT, syscall.ESTALE:
			code = http.StatusNotFound
		case syscall.EEXIST, syscall.ENOTEMPTY, syscall.EBUSY:
			code = http.StatusConflict
		case syscall.ENOSPC:
			code = http.StatusInsufficientStorage
		case syscall.EACCES, syscall.EPERM:
			code = http.StatusForbidden
		default:
			code = http.StatusBadRequest
		}
	}
	writeJSON(w, code, body)
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, cluster.ErrorBody{Error: msg})
}

func (n *Node) status() cluster.NodeStatus {
	rs := n.repl.Status()
	st := cluster.NodeStatus{
		ID: n.cfg.Node.ID, Role: n.cfg.Node.Role, PID: os.Getpid(), Version: version.String(),
		RaftAddr: n.cfg.Node.RaftAddr, AdminAddr: n.cfg.Node.AdminAddr, StartedAt: n.started,
		Raft: rs, Health: "ok", DiskFree: diskFree(n.cfg.Path(n.cfg.Node.DataDir)),
	}
	switch {
	case rs.Disk.Full:
		st.Health = "degraded: data disk full: " + rs.Disk.Reason
	case rs.LeaderID == "":
		st.Health = "no-leader"
	case rs.State != "leader" && !rs.LastContact.IsZero() && time.Since(rs.LastContact) > 5*time.Second:
		st.Health = "degraded: no contact with the leader for " + time.Since(rs.LastContact).Round(time.Second).String()
	}
	st.Tunnels = n.tunnels.list()
	st.Active = n.activeInfo()
	st.Resources = n.resources.Status()
	st.Seed = n.seed
	if n.repl.IsLeader() {
		st.Backups = n.schedules.status()
	}
	if s := n.repl.Store(); s != nil {
		if vols, err := s.Volumes(); err == nil {
			for _, v := range vols {
				st.Volumes = append(st.Volumes, volumeInfo(v))
			}
		}
	}
	return st
}

func volumeInfo(v fsstate.Volume) cluster.VolumeInfo {
	return cluster.VolumeInfo{ID: v.ID, Name: v.Name, SizeBytes: v.SizeLimit, UsedBytes: v.Used, Inodes: v.Inodes,
		Created: time.Unix(0, int64(v.Created)).UTC(),
		Export: cluster.ExportInfo{Clients: append([]string{}, v.Export.Clients...), ReadOnly: v.Export.ReadOnly,
			Squash: v.Export.Squash.String(), AnonUID: v.Export.AnonUID, AnonGID: v.Export.AnonGID}}
}

func (n *Node) handleSetExport(w http.ResponseWriter, r *http.Request) {
	var req struct {
		cluster.ExportInfo
		AnonUID *uint32 `json:"anon_uid"`
		AnonGID *uint32 `json:"anon_gid"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "bad export request: "+err.Error())
		return
	}
	// Left out, the anonymous ids are nobody's (65534), never root's.
	e := fsstate.Export{Clients: req.Clients, ReadOnly: req.ReadOnly, AnonUID: fsstate.AnonID, AnonGID: fsstate.AnonID}
	if req.AnonUID != nil {
		e.AnonUID = *req.AnonUID
	}
	if req.AnonGID != nil {
		e.AnonGID = *req.AnonGID
	}
	switch req.Squash {
	case "", "root_squash":
		e.Squash = fsstate.SquashRoot
	case "no_root_squash":
		e.Squash = fsstate.SquashNone
	case "all_squash":
		e.Squash = fsstate.SquashAll
	default:
		badRequest(w, "squash must be root_squash, no_root_squash or all_squash")
		return
	}
	v, err := n.fs.SetExport(r.Context(), r.PathValue("name"), e)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeInfo(v))
}

func diskFree(dir string) uint64 {
	var s syscall.Statfs_t
	if syscall.Statfs(dir, &s) != nil {
		return 0
	}
	return s.Bavail * uint64(s.Bsize)
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.status())
}

func (n *Node) handleVolumes(w http.ResponseWriter, r *http.Request) {
	vols, err := n.fs.Volumes(r.Context())
	if err != nil {
		n.writeErr(w, err)
		return
	}
	out := []cluster.VolumeInfo{}
	for _, v := range vols {
		out = append(out, volumeInfo(v))
	}
	writeJSON(w, http.StatusOK, out)
}

func decodeVolumeRequest(w http.ResponseWriter, r *http.Request) (cluster.VolumeRequest, bool) {
	var req cluster.VolumeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "bad volume request: "+err.Error())
		return req, false
	}
	return req, true
}

func (n *Node) handleCreateVolume(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeVolumeRequest(w, r)
	if !ok {
		return
	}
	v, err := n.fs.CreateVolume(r.Context(), req.Name, req.SizeBytes)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeInfo(v))
}

func (n *Node) handleResizeVolume(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeVolumeRequest(w, r)
	if !ok {
		return
	}
	v, err := n.fs.ResizeVolume(r.Context(), r.PathValue("name"), req.SizeBytes)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeInfo(v))
}

func (n *Node) handleDeleteVolume(w http.ResponseWriter, r *http.Request) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	if err := n.fs.DeleteVolume(r.Context(), r.PathValue("name"), force); err != nil {
		n.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) handleHash(w http.ResponseWriter, r *http.Request) {
	s := n.repl.Store()
	if s == nil {
		badRequest(w, "this node is a witness and holds no state")
		return
	}
	h, err := s.Hash()
	if err != nil {
		n.writeErr(w, err)
		return
	}
	idx, _, _ := s.Applied()
	writeJSON(w, http.StatusOK, cluster.StateHash{ID: n.cfg.Node.ID, AppliedIndex: idx, Hash: hex.EncodeToString(h[:])})
}

func (n *Node) handleTransfer(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	addr := ""
	if to != "" {
		for _, p := range n.peers() {
			if p.ID == to {
				addr = p.RaftAddr
			}
		}
		if addr == "" {
			badRequest(w, "no node "+to+" in this cluster")
			return
		}
	}
	if !n.repl.IsLeader() {
		n.writeErr(w, &replication.NotLeaderError{LeaderID: func() string { id, _ := n.repl.Leader(); return id }()})
		return
	}
	if err := n.repl.Transfer(to, addr); err != nil {
		n.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) handleRaftSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := n.repl.Snapshot(); err != nil {
		n.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
