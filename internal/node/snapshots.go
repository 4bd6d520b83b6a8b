package node

import (
	"encoding/json"
	"net/http"
	"time"

	"keel/internal/cluster"
	"keel/internal/fsstate"
)

func snapshotInfo(s fsstate.SnapshotInfo) cluster.SnapshotInfo {
	return cluster.SnapshotInfo{Volume: s.VolName, Name: s.Name, Created: time.Unix(0, int64(s.Created)).UTC(), Index: s.Index,
		VolumeUsedBytes: s.VolumeUsed, VolumeInodes: s.VolumeInodes, HeldBytes: s.HeldBytes, Missing: s.Missing}
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		badRequest(w, "bad request body: "+err.Error())
		return false
	}
	return true
}

func (n *Node) handleCreateSnapshot(w http.ResponseWriter, r *http.Request) {
	var req cluster.SnapshotRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	s, err := n.fs.CreateSnapshot(r.Context(), r.PathValue("name"), req.Name)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, snapshotInfo(s))
}

func (n *Node) handleListSnapshots(w http.ResponseWriter, r *http.Request) {
	snaps, err := n.fs.Snapshots(r.Context(), r.URL.Query().Get("volume"))
	if err != nil {
		n.writeErr(w, err)
		return
	}
	out := []cluster.SnapshotInfo{}
	for _, s := range snaps {
		out = append(out, snapshotInfo(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleDeleteSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := n.fs.DeleteSnapshot(r.Context(), r.PathValue("name"), r.PathValue("snap")); err != nil {
		n.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) handleClone(w http.ResponseWriter, r *http.Request) {
	var req cluster.CloneRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	v, err := n.fs.CloneVolume(r.Context(), r.PathValue("name"), req.Snapshot, req.To, req.SizeBytes)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeInfo(v))
}

func (n *Node) handleRevert(w http.ResponseWriter, r *http.Request) {
	var req cluster.RevertRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	v, err := n.fs.RevertVolume(r.Context(), r.PathValue("name"), req.Snapshot, req.Force)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeInfo(v))
}
