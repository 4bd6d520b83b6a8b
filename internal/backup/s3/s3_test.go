package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keel/internal/backup/s3"
	"keel/internal/backup/s3/s3test"
)

// startServer runs versitygw for the test, with bucket made.
func startServer(t *testing.T, o s3test.Options, bucket string) *s3test.Server {
	t.Helper()
	bin, err := s3test.Find()
	if err != nil {
		t.Skipf("skipped: these tests run a real S3 server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o.Root == "" {
		o.Root = filepath.Join(t.TempDir(), "s3root")
	}
	srv, err := s3test.Start(ctx, bin, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if bucket != "" {
		if err := srv.CreateBucket(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// isolate clears the AWS settings of the environment and the shared config
// files, so that only what the test sets counts (and no instance role is
// looked up: no traffic leaves loopback).
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REQUEST_CHECKSUM_CALCULATION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// useServer puts the server's credentials in the environment.
func useServer(t *testing.T, srv *s3test.Server) {
	t.Helper()
	isolate(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func open(t *testing.T, raw string) *s3.Store {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s3.Open(u)
	if err != nil {
		t.Fatalf("open %s: %v", raw, err)
	}
	return st
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func get(t *testing.T, st *s3.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func TestStoreObjects(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "keel-objects")
	useServer(t, srv)
	st := open(t, srv.URL("keel-objects", "site/a"))
	other := open(t, srv.URL("keel-objects", "site/b"))
	ctx := ctxT(t)

	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	if err := st.Put(ctx, "chunks/ab/abc", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "backups/v/1.json", strings.NewReader("{}"), 2); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "empty", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, "chunks/ab/other", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if got := get(t, st, "chunks/ab/abc"); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes, not the %d put", len(got), len(data))
	}
	// The object is a file under the prefix in versitygw's directory.
	if b, err := os.ReadFile(srv.ObjectPath("keel-objects", "site/a/chunks/ab/abc")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the object is not stored under the prefix: %v", err)
	}
	if size, ok, err := st.Stat(ctx, "chunks/ab/abc"); err != nil || !ok || size != int64(len(data)) {
		t.Fatalf("stat: %d %t %v", size, ok, err)
	}
	if size, ok, err := st.Stat(ctx, "empty"); err != nil || !ok || size != 0 {
		t.Fatalf("stat empty: %d %t %v", size, ok, err)
	}
	if _, ok, err := st.Stat(ctx, "chunks/ab/nope"); err != nil || ok {
		t.Fatalf("stat of a missing key: %t %v", ok, err)
	}
	if _, err := st.Get(ctx, "chunks/ab/nope"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "chunks/ab/nope") {
		t.Fatalf("get of a missing key: %v (want fs.ErrNotExist naming the key)", err)
	}
	keys, err := st.List(ctx, "")
	if err != nil || strings.Join(keys, " ") != "backups/v/1.json chunks/ab/abc empty" {
		t.Fatalf("list: %q %v", keys, err)
	}
	if keys, err := st.List(ctx, "chunks/"); err != nil || len(keys) != 1 || keys[0] != "chunks/ab/abc" {
		t.Fatalf("list chunks/: %q %v", keys, err)
	}
	if err := st.Delete(ctx, "chunks/ab/abc"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "chunks/ab/abc"); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	if _, ok, err := st.Stat(ctx, "chunks/ab/abc"); err != nil || ok {
		t.Fatalf("stat after delete: %t %v", ok, err)
	}
	if keys, err := other.List(ctx, ""); err != nil || len(keys) != 1 || keys[0] != "chunks/ab/other" {
		t.Fatalf("the other prefix lists %q %v", keys, err)
	}
	for _, bad := range []string{"", "/abs", "dir/", "a/../b", "a//b"} {
		if err := st.Put(ctx, bad, strings.NewReader(""), 0); err == nil {
			t.Errorf("put of key %q was accepted", bad)
		}
	}
}

func TestStoreListPages(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "keel-pages")
	useServer(t, srv)
	st := open(t, srv.URL("keel-pages", "p"))
	ctx := ctxT(t)
	const n = 1234 // more than one page of 1000
	keys := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if err := st.Put(ctx, k, strings.NewReader(k), int64(len(k))); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		keys <- fmt.Sprintf("chunks/%02x/key-%05d", i%256, i)
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := st.List(ctx, "chunks/")
	if err != nil || len(got) != n {
		t.Fatalf("list: %d keys (want %d), %v", len(got), n, err)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("list not sorted: %q before %q", got[i-1], got[i])
		}
	}
	if sub, err := st.List(ctx, "chunks/07/"); err != nil || len(sub) != 5 { // 7, 263, 519, 775, 1031
		t.Fatalf("list chunks/07/: %q %v", sub, err)
	}
	for _, k := range got[:300] {
		if err := st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if left, err := st.List(ctx, ""); err != nil || len(left) != n-300 {
		t.Fatalf("after deleting 300: %d keys, %v", len(left), err)
	}
}

// shortReader gives n bytes, then fails as a cut connection would.
type shortReader struct{ n int }

func (r *shortReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestStorePutExactSize(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "keel-size")
	useServer(t, srv)
	st := open(t, srv.URL("keel-size", ""))
	ctx := ctxT(t)
	data := bytes.Repeat([]byte{7}, 1000)
	cases := map[string]struct {
		r    io.Reader
		size int64
	}{
		"truncated":  {bytes.NewReader(data[:600]), 1000},
		"too long":   {bytes.NewReader(data), 600},
		"read error": {&shortReader{500}, 1000},
	}
	for name, c := range cases {
		key := "chunks/x/" + strings.ReplaceAll(name, " ", "-")
		if err := st.Put(ctx, key, c.r, c.size); err == nil {
			t.Errorf("%s: put accepted", name)
		}
		if _, ok, err := st.Stat(ctx, key); err != nil || ok {
			t.Errorf("%s: something was stored (%t, %v)", name, ok, err)
		}
	}
}

func TestStoreWrongBucket(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "keel-real")
	useServer(t, srv)
	st := open(t, srv.URL("keel-missing", "x"))
	ctx := ctxT(t)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, s3.ErrNoSuchBucket) || !strings.Contains(err.Error(), `"keel-missing"`) {
			t.Errorf("%s in a missing bucket: %v (want ErrNoSuchBucket naming it)", op, err)
		}
	}
	check("put", st.Put(ctx, "k", strings.NewReader("x"), 1))
	_, err := st.Get(ctx, "k")
	check("get", err)
	_, err = st.List(ctx, "")
	check("list", err)
	_, _, err = st.Stat(ctx, "k")
	check("stat", err)
	check("delete", st.Delete(ctx, "k"))
}

func TestStoreWrongCredentials(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "keel-creds")
	ctx := ctxT(t)
	for _, c := range []struct{ name, access, secret, code string }{
		{"wrong secret", srv.AccessKey, "not-the-secret", "SignatureDoesNotMatch"},
		{"unknown key", "AKIANOSUCHKEY0000000", srv.SecretKey, "XAdminUserNotFound"}, // versitygw's InvalidAccessKeyId
	} {
		useServer(t, srv)
		t.Setenv("AWS_ACCESS_KEY_ID", c.access)
		t.Setenv("AWS_SECRET_ACCESS_KEY", c.secret)
		st := open(t, srv.URL("keel-creds", ""))
		err := st.Put(ctx, "k", strings.NewReader("x"), 1)
		t.Logf("%s: %v", c.name, err)
		if !errors.Is(err, s3.ErrCredentials) || !strings.Contains(err.Error(), c.code) ||
			!strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || !strings.Contains(err.Error(), "EnvConfigCredentials") {
			t.Errorf("%s: %v (want ErrCredentials naming %s, the source and the variables)", c.name, err, c.code)
		}
		if _, err := st.List(ctx, ""); !errors.Is(err, s3.ErrCredentials) {
			t.Errorf("%s: list: %v", c.name, err)
		}
	}
	// No credentials at all (and no instance role to look up).
	useServer(t, srv)
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	st := open(t, srv.URL("keel-creds", ""))
	if _, err := st.List(ctx, ""); !errors.Is(err, s3.ErrCredentials) || !strings.Contains(err.Error(), "no AWS credentials") {
		t.Errorf("without credentials: %v", err)
	}
}

func TestStoreUnreachable(t *testing.T) {
	srv := startServer(t, s3test.Options{}, "")
	useServer(t, srv)
	endpoint := srv.Endpoint
	srv.Close() // nothing listens there now
	st := open(t, "s3://keel-gone/x?endpoint="+endpoint)
	start := time.Now()
	_, err := st.List(ctxT(t), "")
	if !errors.Is(err, s3.ErrUnreachable) || !strings.Contains(err.Error(), endpoint) || !strings.Contains(err.Error(), "endpoint=") {
		t.Fatalf("list on a closed port: %v (want ErrUnreachable naming the endpoint)", err)
	}
	t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestStoreFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: a full store is a tmpfs mounted in a mount namespace of the server's own, which needs root")
	}
	srv := startServer(t, s3test.Options{TmpfsSize: 2 << 20}, "keel-full")
	useServer(t, srv)
	st := open(t, srv.URL("keel-full", "x"))
	ctx := ctxT(t)
	data := bytes.Repeat([]byte{1}, 64<<10)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = st.Put(ctx, fmt.Sprintf("chunks/00/%03d", i), bytes.NewReader(data), int64(len(data)))
	}
	if !errors.Is(err, s3.ErrFull) || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("filling a 2 MiB store with 6.4 MiB: %v (want ErrFull)", err)
	}
	t.Logf("full: %v", err)
}

func TestOpenSettings(t *testing.T) {
	isolate(t)
	for _, c := range []struct{ url, want string }{
		{"s3://ab/x", "bucket name"},
		{"s3://Upper/x", "bucket name"},
		{"s3://user:pw@bucket/x", "credentials do not go in the URL"},
		{"s3://bucket/x?color=red", `unknown setting "color"`},
		{"s3://bucket/x?endpoint=ftp://host", "endpoint="},
		{"s3://bucket/x?path_style=maybe", "path_style="},
		{"s3://bucket/a/../b", "bad prefix"},
		{"s3://bucket/x?region=", "region= is empty"},
	} {
		u, _ := url.Parse(c.url)
		if _, err := s3.Open(u); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want an error saying %q)", c.url, err, c.want)
		}
	}
	endpoint := func(raw string) (string, string) {
		st := open(t, raw)
		o := st.Client().Options()
		return st.Endpoint(), fmt.Sprintf("%s path_style=%t", o.Region, o.UsePathStyle)
	}
	if e, r := endpoint("s3://bucket/x"); e != "" || r != "us-east-1 path_style=false" {
		t.Errorf("defaults: endpoint %q, %s", e, r)
	}
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	if e, r := endpoint("s3://bucket/x"); e != "http://127.0.0.1:1" || r != "eu-west-3 path_style=true" {
		t.Errorf("AWS_ENDPOINT_URL, AWS_REGION: endpoint %q, %s", e, r)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
	if e, _ := endpoint("s3://bucket/x"); e != "http://127.0.0.1:2" {
		t.Errorf("AWS_ENDPOINT_URL_S3 after AWS_ENDPOINT_URL: endpoint %q", e)
	}
	if e, r := endpoint("s3://bucket/x?endpoint=http://127.0.0.1:3&region=ap-south-1&path_style=false"); e != "http://127.0.0.1:3" ||
		r != "ap-south-1 path_style=false" {
		t.Errorf("the URL's settings: endpoint %q, %s", e, r)
	}
	if got := open(t, "s3://bucket/a/b/?region=x").String(); got != "s3://bucket/a/b" {
		t.Errorf("String: %q", got)
	}
}
