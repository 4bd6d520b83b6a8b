package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"keel/internal/cluster"
	"keel/internal/fsapi"
	"keel/internal/fsstate"
	"keel/internal/replication"
)

// The /v1/files routes let an operator (and the end-to-end tests) put, get
// and remove files by path without an NFS client. Reads go through the
// read-index barrier on the leader; ?local=1 reads this node's own copy
// instead, to compare replicas.

const ioChunk = 1 << 20

// view returns the state to read from: the leader's after the read-index
// barrier, or with local=1 this node's own.
func (n *Node) view(r *http.Request) (*fsstate.Store, error) {
	local, _ := strconv.ParseBool(r.URL.Query().Get("local"))
	if !local {
		if err := n.repl.ReadIndex(r.Context()); err != nil {
			return nil, err
		}
	}
	s := n.repl.Store()
	if s == nil {
		return nil, errors.New("node: this node is a witness and holds no data; ask a data node")
	}
	return s, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// walk resolves a path to its parent directory and final attributes. The
// final attributes' error is ENOENT when only the last component is missing.
func walk(s *fsstate.Store, vol uint64, parts []string) (parent fsstate.Attr, a fsstate.Attr, err error) {
	a, err = s.GetAttr(vol, fsstate.RootIno)
	if err != nil {
		return a, a, err
	}
	parent = a
	for _, c := range parts {
		parent = a
		a, err = s.Lookup(vol, a.Ino, c)
		if err != nil {
			return parent, a, err
		}
	}
	return parent, a, nil
}

// resolve finds the request's volume and path in the state a read sees,
// answering the error itself when it fails.
func (n *Node) resolve(w http.ResponseWriter, r *http.Request, parts []string) (*fsstate.Store, fsstate.Volume, fsstate.Attr, fsstate.Attr, bool) {
	s, err := n.view(r)
	if err != nil {
		n.writeErr(w, err)
		return nil, fsstate.Volume{}, fsstate.Attr{}, fsstate.Attr{}, false
	}
	vol, err := s.VolumeByName(r.PathValue("vol"))
	if err != nil {
		n.writeErr(w, err)
		return nil, vol, fsstate.Attr{}, fsstate.Attr{}, false
	}
	parent, a, err := walk(s, vol.ID, parts)
	if err != nil {
		n.writeErr(w, err)
		return nil, vol, parent, a, false
	}
	return s, vol, parent, a, true
}

func (n *Node) handlePutFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	off, _ := strconv.ParseUint(q.Get("offset"), 10, 64)
	mkdirs, _ := strconv.ParseBool(q.Get("mkdirs"))
	truncate, _ := strconv.ParseBool(q.Get("truncate"))
	mode := uint64(0o644)
	if m := q.Get("mode"); m != "" {
		var err error
		if mode, err = strconv.ParseUint(m, 8, 32); err != nil {
			badRequest(w, "mode must be octal, e.g. 0644")
			return
		}
	}
	parts := splitPath(r.PathValue("path"))
	if len(parts) == 0 {
		badRequest(w, "a file path is needed after the volume name")
		return
	}
	// Changes are made by the leader. Names resolve on its own state without
	// the read-index barrier: the changes go through raft and are checked
	// again when applied.
	if !n.repl.IsLeader() {
		id, _ := n.repl.Leader()
		n.writeErr(w, &replication.NotLeaderError{LeaderID: id})
		return
	}
	s, err := n.fs.Local()
	if err != nil {
		n.writeErr(w, err)
		return
	}
	vol, err := s.VolumeByName(r.PathValue("vol"))
	if err != nil {
		n.writeErr(w, err)
		return
	}
	dir, err := s.GetAttr(vol.ID, fsstate.RootIno)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	for _, c := range parts[:len(parts)-1] {
		a, err := s.Lookup(vol.ID, dir.Ino, c)
		if errors.Is(err, syscall.ENOENT) && mkdirs {
			var res fsstate.Result
			res, err = n.fs.Create(ctx, nil, fsapi.CreateArgs{Vol: vol.ID, Dir: dir.Ino, Name: c, Type: fsstate.TypeDir, Mode: 0o755})
			if errors.Is(err, syscall.EEXIST) {
				res.Attr, err = s.Lookup(vol.ID, dir.Ino, c)
			}
			a = res.Attr
		}
		if err != nil {
			n.writeErr(w, err)
			return
		}
		dir = a
	}
	name := parts[len(parts)-1]
	if truncate && off == 0 {
		n.replaceFile(w, r, vol, dir.Ino, name, uint32(mode))
		return
	}
	file, err := s.Lookup(vol.ID, dir.Ino, name)
	if err != nil || file.Type != fsstate.TypeRegular {
		var res fsstate.Result
		res, err = n.fs.Create(ctx, nil, fsapi.CreateArgs{Vol: vol.ID, Dir: dir.Ino, Name: name, Type: fsstate.TypeRegular,
			Mode: uint32(mode), CreateMode: fsstate.CreateUnchecked})
		if err != nil {
			n.writeErr(w, err)
			return
		}
		file = res.Attr
	}
	if truncate && file.Size > off {
		sz := off
		if _, err := n.fs.SetAttr(ctx, nil, vol.ID, file.Ino, fsstate.SetAttr{Size: &sz}, nil); err != nil {
			n.writeErr(w, err)
			return
		}
	}
	written, err := n.copyIn(r, vol.ID, file.Ino, off)
	if err != nil {
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"written": written, "ino": file.Ino})
}

// replaceFile writes the body into a new hidden file and renames it over
// dir/name only once all of it is written: a put that fails (no space, a
// dropped connection) leaves the old contents, or no file, as they were.
func (n *Node) replaceFile(w http.ResponseWriter, r *http.Request, vol fsstate.Volume, dir uint64, name string, mode uint32) {
	ctx := r.Context()
	if r.ContentLength > 0 && vol.Used+uint64(r.ContentLength) > vol.SizeLimit {
		n.writeErr(w, syscall.ENOSPC)
		return
	}
	tmp := fmt.Sprintf(".keel-put-%d-%s", time.Now().UnixNano(), name)
	if len(tmp) > fsstate.MaxNameLen {
		tmp = tmp[:fsstate.MaxNameLen]
	}
	res, err := n.fs.Create(ctx, nil, fsapi.CreateArgs{Vol: vol.ID, Dir: dir, Name: tmp, Type: fsstate.TypeRegular,
		Mode: mode, CreateMode: fsstate.CreateGuarded})
	if err != nil {
		n.writeErr(w, err)
		return
	}
	written, err := n.copyIn(r, vol.ID, res.Attr.Ino, 0)
	if err == nil {
		_, err = n.fs.Rename(ctx, nil, vol.ID, dir, tmp, dir, name)
	}
	if err != nil {
		_, _ = n.fs.Remove(context.WithoutCancel(ctx), nil, vol.ID, dir, tmp)
		n.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"written": written, "ino": res.Attr.Ino})
}

// copyIn writes the request body into a file at off, in 1 MiB writes.
func (n *Node) copyIn(r *http.Request, vol, ino, off uint64) (uint64, error) {
	buf := make([]byte, ioChunk)
	var written uint64
	for {
		k, rerr := io.ReadFull(r.Body, buf)
		if k > 0 {
			if _, err := n.fs.Write(r.Context(), nil, vol, ino, off+written, buf[:k]); err != nil {
				return written, err
			}
			written += uint64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return written, nil
		}
		if rerr != nil {
			return written, fmt.Errorf("node: reading the request body: %w", rerr)
		}
	}
}

func (n *Node) handleGetFile(w http.ResponseWriter, r *http.Request) {
	s, vol, _, a, ok := n.resolve(w, r, splitPath(r.PathValue("path")))
	if !ok {
		return
	}
	switch a.Type {
	case fsstate.TypeDir:
		n.listDir(w, s, vol.ID, a.Ino)
		return
	case fsstate.TypeSymlink:
		t, err := s.Readlink(vol.ID, a.Ino)
		if err != nil {
			n.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"symlink": t})
		return
	}
	sum := r.URL.Query().Get("sum") == "sha256"
	h := sha256.New()
	var out io.Writer = w
	if sum {
		out = h
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatUint(a.Size, 10))
	}
	for off := uint64(0); off < a.Size; {
		data, eof, err := s.Read(vol.ID, a.Ino, off, ioChunk)
		if err != nil {
			if sum {
				n.writeErr(w, err)
			}
			return
		}
		if _, err := out.Write(data); err != nil {
			return
		}
		off += uint64(len(data))
		if eof || len(data) == 0 {
			break
		}
	}
	if sum {
		writeJSON(w, http.StatusOK, map[string]any{"sha256": hex.EncodeToString(h.Sum(nil)), "size": a.Size})
	}
}

func (n *Node) listDir(w http.ResponseWriter, s *fsstate.Store, vol, dir uint64) {
	out := []cluster.DirEntry{}
	var after uint64
	for {
		ents, eof, err := s.ReadDir(vol, dir, after, 1000)
		if err != nil {
			n.writeErr(w, err)
			return
		}
		for _, e := range ents {
			out = append(out, cluster.DirEntry{Name: e.Name, Type: typeName(e.Attr.Type), Size: e.Attr.Size,
				Mode: e.Attr.Mode, Ino: e.Ino, Mtime: time.Unix(0, int64(e.Attr.Mtime)).UTC()})
			after = e.Cookie
		}
		if eof || len(ents) == 0 {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func typeName(t fsstate.FileType) string {
	switch t {
	case fsstate.TypeDir:
		return "dir"
	case fsstate.TypeSymlink:
		return "symlink"
	}
	return "file"
}

func (n *Node) handleDeleteFile(w http.ResponseWriter, r *http.Request) {
	parts := splitPath(r.PathValue("path"))
	if len(parts) == 0 {
		badRequest(w, "a path is needed after the volume name; to delete a volume use `keel volume delete`")
		return
	}
	_, vol, parent, a, ok := n.resolve(w, r, parts)
	if !ok {
		return
	}
	var err error
	name := parts[len(parts)-1]
	if a.Type == fsstate.TypeDir {
		_, err = n.fs.Rmdir(r.Context(), nil, vol.ID, parent.Ino, name)
	} else {
		_, err = n.fs.Remove(r.Context(), nil, vol.ID, parent.Ino, name)
	}
	if err != nil {
		n.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
