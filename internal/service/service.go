// Package service writes the systemd units that run a keel node or a keel
// tunnel as a service, and installs them where systemd runs.
package service

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kinds of unit.
const (
	KindNode   = "node"
	KindTunnel = "tunnel"
)

// Spec describes a unit.
type Spec struct {
	Kind    string // KindNode or KindTunnel
	Name    string // unit name without .service; default keel-node / keel-tunnel
	Binary  string // absolute path of the keel binary
	Config  string // absolute path of node.yaml or client.yaml
	Listen  string // tunnel: local NFS address (default 127.0.0.1:2049)
	DataDir string // node: the directory the service owns (node.yaml's directory)
	User    string // run as this user (default root); the data directory is given to it
	Group   string // default: User
	// Description is shown by systemctl status.
	Description string
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9:_.@-]{1,200}$`)

// Defaults fills in the defaults and checks spec.
func (s *Spec) Defaults() error {
	switch s.Kind {
	case KindNode, KindTunnel:
	default:
		return fmt.Errorf("service: kind %q: use node or tunnel", s.Kind)
	}
	if s.Name == "" {
		s.Name = "keel-" + s.Kind
	}
	s.Name = strings.TrimSuffix(s.Name, ".service")
	if !nameRe.MatchString(s.Name) {
		return fmt.Errorf("service: unit name %q: use letters, digits and :_.@-", s.Name)
	}
	for what, p := range map[string]string{"binary": s.Binary, "config": s.Config} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("service: the %s path %q must be absolute", what, p)
		}
		if strings.ContainsAny(p, " \t\n\"'\\%$") {
			return fmt.Errorf("service: the %s path %q has spaces or characters systemd would read specially: move it", what, p)
		}
	}
	if s.Kind == KindTunnel && s.Listen == "" {
		s.Listen = "127.0.0.1:2049"
	}
	if s.Kind == KindNode && s.DataDir == "" {
		s.DataDir = filepath.Dir(s.Config)
	}
	if s.User != "" && s.Group == "" {
		s.Group = s.User
	}
	return nil
}

// Unit returns the unit file's content.
func Unit(s Spec) (string, error) {
	if err := s.Defaults(); err != nil {
		return "", err
	}
	var b strings.Builder
	desc := s.Description
	if desc == "" {
		desc = map[string]string{KindNode: "keel storage node", KindTunnel: "keel tunnel (local NFS endpoint following the active node)"}[s.Kind]
	}
	fmt.Fprintf(&b, "# Written by `keel service install`; see docs/deploy.md.\n[Unit]\nDescription=%s\n", desc)
	b.WriteString("Wants=network-online.target\nAfter=network-online.target\n")
	// Restart for ever: do not give up after a burst of failures.
	b.WriteString("StartLimitIntervalSec=0\n\n[Service]\nType=simple\n")
	switch s.Kind {
	case KindNode:
		fmt.Fprintf(&b, "ExecStart=%s serve --config %s\n", s.Binary, s.Config)
		if s.User != "" {
			// "+": runs as root, so that the data directory is the
			// service user's however it was made.
			fmt.Fprintf(&b, "ExecStartPre=+/bin/chown -R %s:%s %s\n", s.User, s.Group, s.DataDir)
		}
		fmt.Fprintf(&b, "WorkingDirectory=%s\n", s.DataDir)
		// A clean stop hands leadership over and closes the stores.
		b.WriteString("KillSignal=SIGTERM\nTimeoutStopSec=30s\n")
	case KindTunnel:
		fmt.Fprintf(&b, "ExecStart=%s tunnel --cluster %s --listen %s\n", s.Binary, s.Config, s.Listen)
		b.WriteString("TimeoutStopSec=10s\n")
	}
	if s.User != "" {
		fmt.Fprintf(&b, "User=%s\nGroup=%s\n", s.User, s.Group)
	}
	b.WriteString("Restart=on-failure\nRestartSec=2s\n")
	// Many NFS clients and raft connections; Pebble keeps many files open.
	b.WriteString("LimitNOFILE=1048576\n")
	b.WriteString("NoNewPrivileges=yes\nPrivateTmp=yes\n")
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String(), nil
}

// Running reports whether systemd manages this machine.
func Running() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// ErrNoSystemd says systemd does not run here.
var ErrNoSystemd = errors.New("service: systemd does not run on this machine (no /run/systemd/system)")

// Install writes the unit into dir (normally /etc/systemd/system) and, if
// start, reloads systemd and enables and (re)starts the unit. It returns
// the unit file's path.
func Install(s Spec, dir string, start bool) (string, error) {
	content, err := Unit(s)
	if err != nil {
		return "", err
	}
	s.Defaults()
	path := filepath.Join(dir, s.Name+".service")
	old, _ := os.ReadFile(path)
	changed := string(old) != content
	if changed {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("service: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("service: write %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("service: write %s: %w", path, err)
		}
	}
	if !start {
		return path, nil
	}
	if !Running() {
		return path, ErrNoSystemd
	}
	steps := [][]string{{"daemon-reload"}, {"enable", s.Name + ".service"}}
	if changed {
		steps = append(steps, []string{"restart", s.Name + ".service"})
	} else {
		steps = append(steps, []string{"start", s.Name + ".service"})
	}
	for _, args := range steps {
		if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
			return path, fmt.Errorf("service: systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return path, nil
}
