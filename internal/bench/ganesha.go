package bench

// NFS-Ganesha with FSAL VFS, the user-space NFS server `keel bench nfs`
// compares keel with: started on free loopback ports with a configuration
// written into the run directory, NFSv3 over TCP only, no NLM, no RQUOTA,
// no grace period, and the export mounted as /data like keel's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"keel/internal/nfs/nfsclient"
)

const (
	// GaneshaInstall is what to run when Ganesha is missing.
	GaneshaInstall   = "apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind"
	ganeshaStart     = 30 * time.Second // for Ganesha to answer NULL on its NFS and MOUNT ports
	ganeshaStop      = 20 * time.Second // for Ganesha to exit on SIGTERM before it is killed
	portmapperAddr   = "127.0.0.1:111"
	portmapperWait   = 10 * time.Second
	portmapProgram   = 100000
	mountProgram     = 100005
	rpcProbeTimeout  = 2 * time.Second
	ganeshaLogTail   = 3000
	ganeshaVFSGlobs  = "/usr/lib/*/ganesha/libfsalvfs.so*:/usr/lib/ganesha/libfsalvfs.so*:/usr/lib64/ganesha/libfsalvfs.so*:/usr/local/lib/ganesha/libfsalvfs.so*:/usr/local/lib64/ganesha/libfsalvfs.so*"
	ganeshaConfFile  = "ganesha.conf"
	ganeshaExportDir = "export"
)

// errNotInstalled says a program the comparison needs is missing.
type errNotInstalled struct{ what string }

func (e *errNotInstalled) Error() string {
	return fmt.Sprintf("not installed (%s missing): %s", e.what, GaneshaInstall)
}

// ganeshaConfig is the configuration of a Ganesha serving exportDir as
// /data with NFSv3 on nfsPort and MOUNT on mountPort of 127.0.0.1.
func ganeshaConfig(exportDir string, nfsPort, mountPort int) string {
	return fmt.Sprintf(`# written by keel bench nfs
NFS_CORE_PARAM {
	Bind_addr = 127.0.0.1;
	NFS_Port = %d;
	MNT_Port = %d;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
	Protocols = 3;
	Mount_Path_Pseudo = true;
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; }
LOG { Default_Log_Level = WARN; }
EXPORT {
	Export_Id = 1;
	Path = %s;
	Pseudo = /data;
	Access_Type = RW;
	Squash = No_Root_Squash;
	Protocols = 3;
	Transports = TCP;
	SecType = sys;
	FSAL { Name = VFS; }
}
`, nfsPort, mountPort, strconv.Quote(exportDir))
}

// ganeshaServer is a running ganesha.nfsd, and the rpcbind started for it
// if none was running.
type ganeshaServer struct {
	dir       string
	exportDir string
	log       string
	nfsAddr   string
	mountAddr string
	version   string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
	rpcbind   *exec.Cmd // nil unless started here
	rpcDone   chan struct{}
}

// findGanesha returns the ganesha.nfsd and rpcbind binaries, or an
// *errNotInstalled.
func findGanesha() (ganesha, rpcbind string, err error) {
	if ganesha, err = exec.LookPath("ganesha.nfsd"); err != nil {
		return "", "", &errNotInstalled{"ganesha.nfsd"}
	}
	found := false
	for _, g := range strings.Split(ganeshaVFSGlobs, ":") {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			found = true
			break
		}
	}
	if !found {
		return "", "", &errNotInstalled{"FSAL VFS, libfsalvfs.so"}
	}
	rpcbind, _ = exec.LookPath("rpcbind") // needed only if no portmapper runs
	return ganesha, rpcbind, nil
}

// rpcAnswers reports whether a NULL call to prog, version vers, at addr is
// answered.
func rpcAnswers(ctx context.Context, addr string, prog, vers uint32) bool {
	ctx, cancel := context.WithTimeout(ctx, rpcProbeTimeout)
	defer cancel()
	c, err := nfsclient.Dial(ctx, addr, nfsclient.Options{AuthNone: true})
	if err != nil {
		return false
	}
	defer c.Close()
	return c.Call(ctx, prog, vers, 0, nil, nil) == nil
}

// startGanesha starts rpcbind if no portmapper answers, then Ganesha
// serving dir/export, and waits until both its ports answer. On failure it
// stops whatever it started.
func startGanesha(ctx context.Context, dir string) (*ganeshaServer, error) {
	bin, rpcbindBin, err := findGanesha()
	if err != nil {
		return nil, err
	}
	g := &ganeshaServer{dir: dir, exportDir: filepath.Join(dir, ganeshaExportDir), log: filepath.Join(dir, "ganesha.log"),
		version: ganeshaVersion(ctx, bin)}
	if err := os.MkdirAll(g.exportDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if !rpcAnswers(ctx, portmapperAddr, portmapProgram, 2) {
		if rpcbindBin == "" {
			return nil, &errNotInstalled{"rpcbind, and no portmapper answers on port 111"}
		}
		if err := g.startRpcbind(ctx, rpcbindBin); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		g.stop()
		return nil, err
	}
	g.nfsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	g.mountAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	conf := filepath.Join(dir, ganeshaConfFile)
	if err := os.WriteFile(conf, []byte(ganeshaConfig(g.exportDir, ports[0], ports[1])), 0o600); err != nil {
		g.stop()
		return nil, fmt.Errorf("bench: %w", err)
	}
	g.cmd = exec.Command(bin, "-F", "-f", conf, "-L", g.log, "-p", filepath.Join(dir, "ganesha.pid"))
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	out, err := os.OpenFile(filepath.Join(dir, "ganesha.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.stop()
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer out.Close()
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		g.stop()
		return nil, fmt.Errorf("bench: start %s: %w", bin, err)
	}
	g.done = make(chan struct{})
	go func() { g.err = g.cmd.Wait(); close(g.done) }()
	if err := g.waitReady(ctx); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

// startRpcbind runs `rpcbind -f -w` and waits until it answers.
func (g *ganeshaServer) startRpcbind(ctx context.Context, bin string) error {
	g.rpcbind = exec.Command(bin, "-f", "-w")
	g.rpcbind.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := g.rpcbind.Start(); err != nil {
		g.rpcbind = nil
		return fmt.Errorf("bench: start rpcbind: %w", err)
	}
	g.rpcDone = make(chan struct{})
	go func() { _ = g.rpcbind.Wait(); close(g.rpcDone) }()
	deadline := time.Now().Add(portmapperWait)
	for !rpcAnswers(ctx, portmapperAddr, portmapProgram, 2) {
		select {
		case <-g.rpcDone:
			g.rpcbind = nil
			return errors.New("bench: rpcbind exited at once (is port 111 taken by something that is not a portmapper?)")
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			g.stop()
			return fmt.Errorf("bench: rpcbind did not answer on %s within %s", portmapperAddr, portmapperWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// waitReady waits until Ganesha answers NULL on its NFS and MOUNT ports.
func (g *ganeshaServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(ganeshaStart)
	for {
		select {
		case <-g.done:
			return fmt.Errorf("bench: ganesha.nfsd exited (%v); end of %s:\n%s", g.err, g.log, g.logTail())
		default:
		}
		if rpcAnswers(ctx, g.nfsAddr, nfsProgram, 3) && rpcAnswers(ctx, g.mountAddr, mountProgram, 3) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: ganesha.nfsd did not answer on %s and %s within %s; end of %s:\n%s",
				g.nfsAddr, g.mountAddr, ganeshaStart, g.log, g.logTail())
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func (g *ganeshaServer) logTail() string {
	b, _ := os.ReadFile(g.log)
	if len(b) > ganeshaLogTail {
		b = b[len(b)-ganeshaLogTail:]
	}
	return string(b)
}

func (g *ganeshaServer) pid() int { return g.cmd.Process.Pid }

// stop ends Ganesha (SIGTERM, then SIGKILL after ganeshaStop) and the
// rpcbind started for it, if any.
func (g *ganeshaServer) stop() {
	if g.cmd != nil && g.done != nil {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(ganeshaStop):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
	}
	if g.rpcbind != nil {
		_ = g.rpcbind.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.rpcDone:
		case <-time.After(5 * time.Second):
			_ = g.rpcbind.Process.Kill()
			<-g.rpcDone
		}
		g.rpcbind = nil
	}
}

// ganeshaVersion asks `ganesha.nfsd -v` ("NFS-Ganesha Release = V4.3").
func ganeshaVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	return parseGaneshaVersion(string(out))
}

// parseGaneshaVersion finds the release in `ganesha.nfsd -v` output.
func parseGaneshaVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(line, "Release ="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
