package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"keel/internal/cluster"
)

// netHost is one "machine" of the deploy test: a network namespace with
// its own address, a mount namespace in which its own directory appears at
// the shared path the deployment uses, and Debian's sshd.
type netHost struct {
	name, ns, ip string
	dir          string // this host's files (appears at root inside its namespace)
	sshd         *exec.Cmd
}

type netLab struct {
	t      *testing.T
	prefix string
	tmp    string
	root   string // the mount point every host sees its own dir at
	bridge string
	hosts  map[string]*netHost
	op     *netHost // the operator's machine (no sshd)
	key    string   // operator's private key file
	known  string   // known_hosts
}

func requireDeployLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the deploy test needs root (network and mount namespaces); run it as root")
	}
	for _, tool := range []string{"/usr/sbin/sshd", "ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the deploy test needs %s (apt-get install openssh-server iproute2 util-linux; .ci/run installs them)", tool)
		}
	}
	requireLibnfs(t)
	requireBinary(t)
}

func (l *netLab) sh(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *netLab) inNS(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

func newNetLab(t *testing.T) *netLab {
	t.Helper()
	tmp := t.TempDir()
	l := &netLab{t: t, prefix: fmt.Sprintf("kd%d-", os.Getpid()%100000), tmp: tmp, root: filepath.Join(tmp, "root"), hosts: map[string]*netHost{}}
	if err := os.MkdirAll(l.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	l.bridge = l.prefix + "br"
	t.Cleanup(l.cleanup)
	l.sh("ip", "netns", "add", l.bridge)
	l.sh("ip", "netns", "exec", l.bridge, "ip", "link", "add", "br0", "type", "bridge")
	l.sh("ip", "netns", "exec", l.bridge, "ip", "link", "set", "br0", "up")

	// The operator's SSH key.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "keel deploy test")
	if err != nil {
		t.Fatal(err)
	}
	l.key = filepath.Join(tmp, "id_ed25519")
	if err := os.WriteFile(l.key, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	if err := os.WriteFile(filepath.Join(tmp, "authorized_keys"), ssh.MarshalAuthorizedKey(sp), 0o600); err != nil {
		t.Fatal(err)
	}
	l.known = filepath.Join(tmp, "known_hosts")
	l.op = l.addNS("op", "10.77.0.2")
	return l
}

// addNS makes a namespace linked to the bridge with address ip/24.
func (l *netLab) addNS(name, ip string) *netHost {
	h := &netHost{name: name, ns: l.prefix + name, ip: ip, dir: filepath.Join(l.tmp, "hosts", name)}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	l.sh("ip", "netns", "add", h.ns)
	veth := "v" + name
	l.sh("ip", "netns", "exec", l.bridge, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	l.sh("ip", "netns", "exec", l.bridge, "ip", "link", "set", veth, "master", "br0", "up")
	l.sh("ip", "netns", "exec", h.ns, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	l.sh("ip", "netns", "exec", h.ns, "ip", "link", "set", "eth0", "up")
	l.sh("ip", "netns", "exec", h.ns, "ip", "link", "set", "lo", "up")
	return h
}

// addHost adds a machine running sshd, whose host key goes into known_hosts.
func (l *netLab) addHost(name, ip string) *netHost {
	t := l.t
	h := l.addNS(name, ip)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, _ := ssh.MarshalPrivateKey(priv, name)
	hk := filepath.Join(h.dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hk, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(priv.Public())
	f, err := os.OpenFile(l.known, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s %s", ip, ssh.MarshalAuthorizedKey(sp))
	f.Close()
	cfg := filepath.Join(h.dir, "sshd_config")
	conf := fmt.Sprintf("ListenAddress %s\nPort 22\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
		ip, hk, filepath.Join(h.dir, "sshd.pid"), filepath.Join(l.tmp, "authorized_keys"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The host's own directory appears at l.root in its mount namespace:
	// every host has "the same" paths, holding its own files.
	script := fmt.Sprintf("mount --bind %s %s && exec /usr/sbin/sshd -D -e -f %s", h.dir, l.root, cfg)
	h.sshd = l.inNS(h.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	logf, _ := os.Create(filepath.Join(h.dir, "sshd.log"))
	h.sshd.Stdout, h.sshd.Stderr = logf, logf
	h.sshd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.sshd.Start(); err != nil {
		t.Fatal(err)
	}
	l.hosts[name] = h
	waitFor(t, 10*time.Second, "sshd on "+name, func() (bool, string) {
		return tcpOpen(l, ip, 22), tailFile(filepath.Join(h.dir, "sshd.log"), 5)
	})
	return h
}

// tcpOpen checks a TCP port from the operator's namespace.
func tcpOpen(l *netLab, ip string, port int) bool {
	return l.inNS(l.op.ns, "timeout", "2", "bash", "-c", fmt.Sprintf("echo > /dev/tcp/%s/%d", ip, port)).Run() == nil
}

// cleanup kills every process in the lab's namespaces (all started by
// this test, through its sshd) and deletes the namespaces.
func (l *netLab) cleanup() {
	names := []string{l.bridge}
	if l.op != nil {
		names = append(names, l.op.ns)
	}
	for _, h := range l.hosts {
		names = append(names, h.ns)
	}
	for _, ns := range names {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, h := range l.hosts {
		if h.sshd != nil && h.sshd.Process != nil {
			_ = h.sshd.Process.Kill()
			_ = h.sshd.Wait()
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, ns := range names {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// deploy runs keel deploy from the operator's namespace.
func (l *netLab) deploy(args ...string) (string, time.Duration) {
	l.t.Helper()
	base := []string{"deploy", "--ssh-key", l.key, "--known-hosts", l.known, "--remote-dir", l.root + "/keel",
		"--remote-bin", l.root + "/bin/keel", "--local-dir", filepath.Join(l.tmp, "op-client")}
	cmd := l.inNS(l.op.ns, append([]string{keelBin}, append(base, args...)...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	l.t.Logf("keel deploy %s (%.1fs):\n%s", strings.Join(args, " "), took.Seconds(), out.String())
	if err != nil {
		l.t.Fatalf("keel deploy failed: %v", err)
	}
	return out.String(), took
}

// keel runs a keel command from the operator's namespace with its client.yaml.
func (l *netLab) keel(args ...string) (string, error) {
	cmd := l.inNS(l.op.ns, append([]string{keelBin}, append(args, "--config", filepath.Join(l.tmp, "op-client", "client.yaml"))...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *netLab) status() cluster.Status {
	var st cluster.Status
	out, err := l.keel("status", "--json")
	if err == nil {
		_ = json.Unmarshal([]byte(out), &st)
	}
	return st
}

// nfs runs a libnfs tool inside a client's namespace, against its tunnel.
func (l *netLab) nfs(h *netHost, tool string, args ...string) (string, error) {
	out, err := l.inNS(h.ns, append([]string{tool}, args...)...).CombinedOutput()
	return string(out), err
}

func tunnelURL(path string) string {
	return "nfs://127.0.0.1/data/" + path + "?nfsport=2049&mountport=2049"
}

// TestDeployOverSSH deploys 2 data nodes, a witness and 2 clients onto
// namespaced "machines" running Debian's sshd, then does the seed's
// walk-through through the clients' tunnels with libnfs, kills the active
// node, runs deploy again (nothing to do but restart what died) and adds a
// third data host.
func TestDeployOverSSH(t *testing.T) {
	requireDeployLab(t)
	l := newNetLab(t)
	ips := map[string]string{"d1": "10.77.0.11", "d2": "10.77.0.12", "w1": "10.77.0.13", "c1": "10.77.0.14", "c2": "10.77.0.15", "d3": "10.77.0.16"}
	for _, n := range []string{"d1", "d2", "w1", "c1", "c2", "d3"} {
		l.addHost(n, ips[n])
	}
	hosts := []string{"--data", "10.77.0.11,10.77.0.12", "--witness", "10.77.0.13", "--client", "10.77.0.14,10.77.0.15", "--volume", "data:1GiB"}
	out, took := l.deploy(hosts...)
	for _, want := range []string{"keel init", "join, start", "verify read", "deployed cluster", "mount -t nfs"} {
		if !strings.Contains(out, want) {
			t.Fatalf("first deploy output lacks %q", want)
		}
	}
	t.Logf("fresh deploy of 2 data + 1 witness + 2 clients: %.1fs wall time (the seed's configure script: 5-7 minutes)", took.Seconds())

	// The seed's walk-through: files touched on one client appear on the other.
	c1, c2 := l.hosts["c1"], l.hosts["c2"]
	local := filepath.Join(l.tmp, "hello.txt")
	if err := os.WriteFile(local, []byte("hello from c1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := l.nfs(c1, "nfs-cp", local, tunnelURL("hello.txt")); err != nil {
		t.Fatalf("nfs-cp on c1 through its tunnel: %v %s", err, o)
	}
	if o, err := l.nfs(c2, "nfs-cat", tunnelURL("hello.txt")); err != nil || o != "hello from c1\n" {
		t.Fatalf("nfs-cat on c2: %v %q", err, o)
	}

	// Kill the active node's processes; the service continues.
	// (A witness that wins an election leads only until it hands off.)
	var leader, lh string
	waitFor(t, 30*time.Second, "a data node leading", func() (bool, string) {
		leader = l.status().Leader
		lh = map[string]string{"n1": "d1", "n2": "d2"}[leader]
		return lh != "", fmt.Sprintf("leader %q", leader)
	})
	pidFile := filepath.Join(l.hosts[lh].dir, "keel", "node", "node.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (%s on %s): %v", pid, leader, lh, err)
	}
	killed := time.Now()
	if err := os.WriteFile(local, []byte("written on c2 after the active node died\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a write through c2's tunnel after the kill", func() (bool, string) {
		o, err := l.nfs(c2, "nfs-cp", local, tunnelURL("after-kill.txt"))
		return err == nil, o
	})
	t.Logf("first write after killing %s succeeded %.1fs after the kill", leader, time.Since(killed).Seconds())
	if o, err := l.nfs(c1, "nfs-cat", tunnelURL("after-kill.txt")); err != nil || !strings.Contains(o, "after the active node died") {
		t.Fatalf("nfs-cat on c1 after the kill: %v %q", err, o)
	}

	// Deploy again: nothing is made anew; the dead node is started again.
	out, _ = l.deploy(hosts...)
	if strings.Contains(out, "keel init") || strings.Contains(out, "join, start") || strings.Contains(out, "copied") {
		t.Fatalf("second deploy redid work:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)` + regexp.QuoteMeta(ips[lh]) + `.*start node\s+started`).MatchString(out) {
		t.Fatalf("second deploy did not start the killed node on %s again", lh)
	}

	// A third data host joins.
	hosts[1] = "10.77.0.11,10.77.0.12,10.77.0.16"
	out, _ = l.deploy(hosts...)
	if !strings.Contains(out, "joined as data n3") {
		t.Fatalf("third data host not joined:\n%s", out)
	}
	st := l.status()
	voters := 0
	for _, n := range st.Nodes {
		if n.Voter && n.Reachable {
			voters++
		}
	}
	if voters != 4 {
		t.Fatalf("after adding d3: %d reachable voters, want 4: %+v", voters, st.Nodes)
	}
	if o, err := l.nfs(c1, "nfs-cat", tunnelURL("hello.txt")); err != nil || o != "hello from c1\n" {
		t.Fatalf("nfs-cat on c1 at the end: %v %q", err, o)
	}
}
