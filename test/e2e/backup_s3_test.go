package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/backup/s3/s3test"
)

// startS3 runs versitygw, a real S3 API server, on loopback with a bucket,
// and puts its credentials (and nothing else of AWS's: no shared config, no
// instance role) in the environment the keel processes inherit.
func startS3(t *testing.T, bucket string) *s3test.Server {
	t.Helper()
	requireBinary(t)
	bin, err := s3test.Find()
	if err != nil {
		t.Skipf("skipped: this test runs a real S3 server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := s3test.Start(ctx, bin, s3test.Options{Root: filepath.Join(t.TempDir(), "s3root")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return srv
}

// TestBackupS3 backs a 64 MiB volume up to a real S3 server (versitygw)
// with the keel CLI, changes 1% of it and pushes again (at most 2% is
// uploaded), verifies, restores both backups and compares every file's
// SHA-256 on every data node; then alters one object in the server's
// directory: verify and restore name it, and the failed restore leaves no
// volume. A wrong bucket is named.
func TestBackupS3(t *testing.T) {
	const bucket = "keel-e2e"
	srv := startS3(t, bucket)
	c := startCluster(t, Shape{Data: 3, Steady: true})
	c.createVolume("data", 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const fileSize, nFiles = 4 << 20, 16 // 64 MiB
	files := map[string]int{"/small/a.txt": 1000, "/small/empty": 0}
	for i := range nFiles {
		files[fmt.Sprintf("/data/f%02d", i)] = fileSize
	}
	var total uint64
	for p, size := range files {
		total += uint64(size)
		if err := c.Client.PutFile(ctx, "data", p, content("s3:"+p, size), true); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	leader := c.WaitLeader(30*time.Second, "")
	firstSums := backupSums(t, leader, "data", files)

	url := srv.URL(bucket, "cluster1")
	start := time.Now()
	first := backupPushCLI(t, c, url)
	t.Logf("first push of %d bytes: uploaded %d in %d chunks in %s", total, first.BytesUploaded, first.ChunksUploaded,
		time.Since(start).Round(time.Millisecond))
	if first.BytesUploaded != total || first.Files != int64(len(files)) {
		t.Fatalf("first push uploaded %d bytes for %d files, want %d bytes for %d", first.BytesUploaded, first.Files, total, len(files))
	}
	if _, err := os.Stat(srv.ObjectPath(bucket, "cluster1/backups/data/"+first.ID+".json")); err != nil {
		t.Fatalf("the manifest is not in the bucket under the prefix: %v", err)
	}

	// Change 1% of the data: one 64 KiB piece in each of 10 files, and push.
	changed := 0
	for i := range 10 {
		p := fmt.Sprintf("/data/f%02d", i)
		b := content("s3:"+p, fileSize)
		off := (i*7 + 3) % 64 * 64 << 10
		copy(b[off:off+64<<10], content(fmt.Sprintf("change %d", i), 64<<10))
		changed += 64 << 10
		if err := c.Client.PutFile(ctx, "data", p, b, false); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	second := backupPushCLI(t, c, url)
	t.Logf("incremental push after changing %d bytes (%.2f%%): uploaded %d bytes (%.2f%%) in %d chunks, %d reused, in %s",
		changed, 100*float64(changed)/float64(total), second.BytesUploaded, 100*float64(second.BytesUploaded)/float64(total),
		second.ChunksUploaded, second.ChunksReused, time.Since(start).Round(time.Millisecond))
	if second.BytesUploaded < uint64(changed) || second.BytesUploaded > total/50 {
		t.Fatalf("incremental push uploaded %d bytes after a %d-byte change of %d (want at most 2%%: %d)",
			second.BytesUploaded, changed, total, total/50)
	}

	if r := runKeel(t, 2*time.Minute, "backup", "verify", url, "--dir", c.Dir); r.Code != 0 || !strings.Contains(r.Stdout, "ok: 2 backups") {
		t.Fatalf("keel backup verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	backupRestoreCLI(t, c, url, "restored")
	backupRestoreCLI(t, c, url+"@"+first.ID, "first")
	want := backupSums(t, leader, "data", files)
	for _, m := range c.DataMembers() {
		waitFor(t, 30*time.Second, "the restored volumes on "+m.ID, func() (bool, string) {
			now, then := backupSums(t, m, "restored", files), backupSums(t, m, "first", files)
			for p := range files {
				if now[p] != want[p] || then[p] != firstSums[p] {
					return false, p + " differs"
				}
			}
			return true, ""
		})
	}
	backupCompareTrees(t, c, "data", "restored", "/")

	// Alter one chunk in versitygw's directory (same size): verify and
	// restore name it, and the failed restore leaves no volume.
	if chunks, _ := filepath.Glob(srv.ObjectPath(bucket, "cluster1/chunks/*/*")); len(chunks) < 1000 {
		t.Fatalf("%d chunk objects in the bucket", len(chunks))
	}
	backupDamageChunk(t, c, srv.ObjectPath(bucket, "cluster1/chunks/*/*"), url, url+"@"+first.ID, 3)

	// A bucket that does not exist is named, with what to do.
	r := runKeel(t, time.Minute, "backup", "push", "data", "--to", srv.URL("keel-nope", "x"), "--dir", c.Dir)
	if r.Code == 0 || !strings.Contains(r.Stderr, `no such bucket "keel-nope"`) || !strings.Contains(r.Stderr, "create the bucket") {
		t.Fatalf("push to a missing bucket: exit %d: %s", r.Code, r.Stderr)
	}
}
