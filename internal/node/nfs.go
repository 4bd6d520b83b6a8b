package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/buildbarn/go-xdr/pkg/protocols/mount"
	"github.com/buildbarn/go-xdr/pkg/protocols/nfsv3"

	"keel/internal/config"
	"keel/internal/nfs/fh"
	nfsmount "keel/internal/nfs/mount"
	"keel/internal/nfs/nfs3"
	"keel/internal/nfs/portmap"
	"keel/internal/nfs/rpc"
)

// startNFS serves NFSv3, MOUNT v3 and a portmapper on node.nfs_addr (and the
// portmapper alone on node.portmap_addr if set). Every node serves them; only
// the leader answers with data (others answer JUKEBOX, "try again", which a
// tunnel turns into a reconnect to the leader).
// UnstableWritesEnv, set to 1, makes the NFS service answer UNSTABLE
// WRITEs from the replication pipeline (nfs3.Server.UnstableWrites).
const UnstableWritesEnv = "KEEL_NFS_UNSTABLE_WRITES"

func (n *Node) startNFS() error {
	addr := n.cfg.Node.NFSAddr
	if addr == "" {
		return nil
	}
	secret, err := config.ReadSecret(n.cfg.Path(n.cfg.TLS.Secret))
	if err != nil {
		return fmt.Errorf("node: file-handle secret: %w", err)
	}
	handles := fh.NewCodec(secret)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: listen on nfs_addr %s: %w (is another NFS server running there?)", addr, err)
	}
	port := portOf(ln)
	mountPort := port
	var mountLn net.Listener
	if ma := n.cfg.Node.MountAddr; ma != "" {
		if mountLn, err = net.Listen("tcp", ma); err != nil {
			ln.Close()
			return fmt.Errorf("node: listen on mount_addr %s: %w", ma, err)
		}
		mountPort = portOf(mountLn)
	}
	maps := []portmap.Mapping{
		{Prog: nfsv3.NFS_PROGRAM_PROGRAM_NUMBER, Vers: 3, Prot: portmap.IPPROTO_TCP, Port: uint32(port)},
		{Prog: mount.MOUNT_PROGRAM_PROGRAM_NUMBER, Vers: 3, Prot: portmap.IPPROTO_TCP, Port: uint32(mountPort)},
		{Prog: portmap.Program, Vers: 2, Prot: portmap.IPPROTO_TCP, Port: uint32(port)},
	}
	srv := &nfs3.Server{FS: n.fs, Handles: handles, Log: n.log.With("component", "nfs"),
		Verifier: func() uint64 { return n.repl.Raft().CurrentTerm() },
		// Off by default: libnfs ignores the COMMIT verifier, so what a dead
		// leader answered UNSTABLE would be lost to it (README, Guarantees).
		UnstableWrites: os.Getenv(UnstableWritesEnv) == "1"}
	n.nfs = &rpc.Server{
		Programs: map[uint32]rpc.Service{
			nfsv3.NFS_PROGRAM_PROGRAM_NUMBER:   nfsv3.NewNfsProgramService(srv),
			mount.MOUNT_PROGRAM_PROGRAM_NUMBER: nfsmount.V3Only(mount.NewMountProgramService(&nfsmount.Service{FS: n.fs, Handles: handles})),
			portmap.Program:                    portmap.Service(maps),
		},
		Logger:               n.log.With("component", "rpc"),
		MaxInFlightBytes:     int64(n.cfg.NFS.MaxInflightBytes),
		MaxConnInFlightBytes: int64(n.cfg.NFS.MaxConnInflightBytes),
		ReplyBound:           nfs3.ReplyBound,
		Metrics: &rpc.Metrics{InFlightBytes: n.metrics.NFSInFlightBytes, Waits: n.metrics.NFSInFlightWaits,
			StalledClosed: n.metrics.NFSStalledClosed},
	}
	n.metrics.NFSInFlightLimit.Set(float64(n.nfs.InFlightLimit()))
	n.nfsLn = ln
	go func() {
		if err := n.nfs.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			n.log.Error("NFS service stopped", "err", err)
		}
	}()
	if mountLn != nil {
		go func() { _ = n.nfs.Serve(mountLn) }()
	}
	if pa := n.cfg.Node.PortmapAddr; pa != "" {
		pln, err := net.Listen("tcp", pa)
		if err != nil {
			return fmt.Errorf("node: listen on portmap_addr %s: %w (is rpcbind running? stop it or drop portmap_addr)", pa, err)
		}
		go func() { _ = n.nfs.Serve(pln) }()
	}
	n.log.Info("NFS service started", "nfs_addr", ln.Addr().String())
	return nil
}

func portOf(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	return port
}
