package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host is one machine to deploy to.
type Host struct {
	Spec string // as given: [user@]host[:port]
	User string
	Host string // address the cluster's machines reach it at
	Port int
	Role string // data | witness | client
}

// ParseHost reads [user@]host[:port].
func ParseHost(spec, role, defUser string) (Host, error) {
	h := Host{Spec: spec, User: defUser, Port: 22, Role: role}
	rest := spec
	if u, r, ok := strings.Cut(spec, "@"); ok {
		h.User, rest = u, r
	}
	if host, port, err := net.SplitHostPort(rest); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return h, fmt.Errorf("deploy: host %q: bad port %q", spec, port)
		}
		h.Host, h.Port = host, p
	} else {
		h.Host = rest
	}
	if h.Host == "" || h.User == "" || strings.ContainsAny(h.Host, " /") {
		return h, fmt.Errorf("deploy: host %q: write [user@]host[:port], e.g. root@10.0.0.1", spec)
	}
	return h, nil
}

func (h Host) addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// sshConfig builds the client configuration: the key, and known-hosts
// checking unless insecure.
func sshConfig(keyFile, knownHostsFile string, insecure bool, user string) (*ssh.ClientConfig, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("deploy: --ssh-key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("deploy: --ssh-key %s: %w (a passphrase-protected key needs ssh-agent, which keel deploy does not use: use an unencrypted deploy key)", keyFile, err)
	}
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second}
	if insecure {
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		return cfg, nil
	}
	if knownHostsFile == "" {
		home, _ := os.UserHomeDir()
		knownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("deploy: known hosts %s: %w: add the hosts' keys (ssh-keyscan HOST >> %s), or pass --insecure-ignore-host-key on a network you trust", knownHostsFile, err, knownHostsFile)
	}
	cfg.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("host key of %s is not in %s: check it and add it (ssh-keyscan -H %s >> %s), or pass --insecure-ignore-host-key", hostname, knownHostsFile, strings.Split(hostname, ":")[0], knownHostsFile)
			}
			return fmt.Errorf("host key of %s DIFFERS from the one in %s: someone may be in between, or the machine was reinstalled; fix %s before deploying", hostname, knownHostsFile, knownHostsFile)
		}
		return err
	}
	return cfg, nil
}

// remote is an SSH connection to one host.
type remote struct {
	h Host
	c *ssh.Client
}

func dial(ctx context.Context, h Host, cfg *ssh.ClientConfig) (*remote, error) {
	c := *cfg
	c.User = h.User
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", h.addr())
	if err != nil {
		return nil, err
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, h.addr(), &c)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &remote{h: h, c: ssh.NewClient(sc, chans, reqs)}, nil
}

func (r *remote) close() { r.c.Close() }

// run runs a shell command; a failure carries its stderr.
func (r *remote) run(cmd string, stdin io.Reader) (string, error) {
	s, err := r.c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if stdin != nil {
		s.Stdin = stdin
	}
	if err := s.Run(cmd); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("%s: %w: %s", firstWords(cmd), err, msg)
	}
	return out.String(), nil
}

func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) > 4 {
		f = f[:4]
	}
	return strings.Join(f, " ")
}

// quote quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
