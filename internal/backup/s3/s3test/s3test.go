// Package s3test runs a real S3 API server on loopback for keel's tests and
// benchmarks: versitygw (github.com/versity/versitygw) with its posix
// backend, which keeps each object as a plain file (Root/BUCKET/KEY), so a
// test can damage one. It owns finding the binary, starting and stopping
// the server, and the settings a client needs to reach it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Install is the command that installs the server Find looks for.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Region is the region the server is signed for.
const Region = "us-east-1"

// Find returns the versitygw binary: in PATH, ~/go/bin or $(go env
// GOPATH)/bin.
func Find() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "bin"))
	} else if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		dirs = append(dirs, filepath.Join(strings.Split(strings.TrimSpace(string(out)), string(os.PathListSeparator))[0], "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw (an S3 API server) is not in PATH, %s: install it with `%s`",
		strings.Join(dirs, " or "), Install)
}

// Options say how to run the server.
type Options struct {
	Root string // the posix backend's directory (made if missing)
	// TmpfsSize, if > 0, runs the server in a mount namespace of its own
	// with a tmpfs of that many bytes mounted on Root (needs root and
	// unshare): a store that fills up. Root is then seen only by the server.
	TmpfsSize int64
}

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Root      string
	Log       string // its output
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// Start starts versitygw (bin) on a free loopback port and waits until it
// answers.
func Start(ctx context.Context, bin string, o Options) (*Server, error) {
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "keeltest" + randHex(4),
		SecretKey: randHex(20), Root: o.Root, Log: filepath.Join(filepath.Dir(o.Root), filepath.Base(o.Root)+".log"),
		done: make(chan struct{})}
	args := []string{"--port", fmt.Sprintf("127.0.0.1:%d", port), "posix", o.Root}
	if o.TmpfsSize > 0 {
		script := fmt.Sprintf(`mount -t tmpfs -o size=%d tmpfs "$1" && shift && exec "$@"`, o.TmpfsSize)
		s.cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", o.Root, bin}, args...)...)
	} else {
		s.cmd = exec.Command(bin, args...)
	}
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3test: start %s: %w", bin, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	if err := s.waitUp(ctx, 30*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitUp(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := s.Client()
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("s3test: versitygw exited (%v): %s", s.err, tail(s.Log))
		default:
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = c.ListBuckets(actx, &awss3.ListBucketsInput{})
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("s3test: versitygw did not answer on %s within %s (%v): %s", s.Endpoint, timeout, last, tail(s.Log))
}

// Client returns an S3 client with the server's root credentials.
func (s *Server) Client() *awss3.Client {
	return s.ClientWith(s.AccessKey, s.SecretKey)
}

// ClientWith returns an S3 client of the server with other credentials.
func (s *Server) ClientWith(access, secret string) *awss3.Client {
	return awss3.New(awss3.Options{Region: Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, "")})
}

// CreateBucket makes a bucket (3 to 63 characters).
func (s *Server) CreateBucket(ctx context.Context, bucket string) error {
	if _, err := s.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("s3test: create bucket %s: %w", bucket, err)
	}
	return nil
}

// Env returns the environment a client process (keel serve) needs to reach
// the server with the root credentials.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true"}
}

// URL returns the backup URL of prefix in bucket on the server.
func (s *Server) URL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint
}

// ObjectPath returns the file that holds an object (posix backend).
func (s *Server) ObjectPath(bucket, key string) string {
	return filepath.Join(s.Root, bucket, filepath.FromSlash(key))
}

// PID returns the server's process id (of unshare's child with TmpfsSize).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Close stops the server.
func (s *Server) Close() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("s3test: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
