package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
	"keel/internal/config"
)

// startOne starts a one-node cluster in-process and returns an admin client.
func startOne(t *testing.T) (*Node, *cluster.Client) {
	t.Helper()
	ports := make([]int, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	lay, err := config.Generate(config.InitSpec{Dir: filepath.Join(t.TempDir(), "c"),
		Nodes: []config.NodeSpec{{ID: "n1", RaftPort: ports[0], AdminPort: ports[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(lay.NodeConfigs["n1"])
	if err != nil {
		t.Fatal(err)
	}
	n, err := startRetry(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !n.repl.IsLeader() {
		if ctx.Err() != nil {
			t.Fatal("no leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cc, err := config.LoadClient(lay.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return n, c
}

// startRetry starts the node, trying again while its ports are taken.
func startRetry(t *testing.T, cfg *config.Config) (*Node, error) {
	var err error
	for i := 0; i < 50; i++ {
		var n *Node
		if n, err = Start(cfg, nil); err == nil {
			return n, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

func TestBackupAdminAPI(t *testing.T) {
	_, c := startOne(t)
	ctx := context.Background()
	if _, err := c.CreateVolume(ctx, "data", 1<<30); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(big)
	if err := c.PutFile(ctx, "data", "/d/big", big, true); err != nil {
		t.Fatal(err)
	}
	if err := c.PutFile(ctx, "data", "/small", []byte("hello"), true); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backups")
	url := "file://" + dir
	var lines int
	first, err := c.BackupPush(ctx, "data", url, func(cluster.BackupProgress) { lines++ })
	if err != nil {
		t.Fatal(err)
	}
	if first.BytesUploaded != 1<<20+5 || first.Files != 2 || lines == 0 {
		t.Fatalf("first push: %+v (%d progress lines)", first, lines)
	}
	if _, err := os.Stat(filepath.Join(dir, first.Manifest)); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	big[500_000] ^= 0xff
	if err := c.PutFile(ctx, "data", "/d/big", big, true); err != nil {
		t.Fatal(err)
	}
	second, err := c.BackupPush(ctx, "data", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.BytesUploaded != 64<<10 || second.ChunksUploaded != 1 {
		t.Fatalf("second push uploaded %d bytes in %d chunks, want one 64 KiB chunk", second.BytesUploaded, second.ChunksUploaded)
	}
	list, err := c.Backups(ctx, url)
	if err != nil || len(list) != 2 || list[1].ID != second.ID || list[1].UniqueBytes != 64<<10 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if v, err := c.BackupVerify(ctx, url, "", nil); err != nil || v.Chunks != 18 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	res, err := c.BackupRestore(ctx, cluster.BackupRestoreRequest{URL: url, ID: first.ID, Volume: "old"}, nil)
	if err != nil || res.BytesWritten != 1<<20+5 {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	got, err := c.GetFile(ctx, "old", "/d/big")
	big[500_000] ^= 0xff
	if err != nil || string(got) != string(big) {
		t.Fatalf("restored file differs (%v)", err)
	}

	// Refusals: an existing volume, an unknown scheme, a damaged chunk.
	_, err = c.BackupRestore(ctx, cluster.BackupRestoreRequest{URL: url, Volume: "old"}, nil)
	var apiErr *cluster.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("restore into an existing volume: %v", err)
	}
	if _, err := c.BackupPush(ctx, "data", "gs://bucket/x", nil); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Fatalf("push to gs://: %v", err)
	}
	chunks, _ := filepath.Glob(filepath.Join(dir, "chunks", "*", "*"))
	orig, _ := os.ReadFile(chunks[0])
	if err := os.WriteFile(chunks[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := c.BackupVerify(ctx, url, second.ID, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(chunks[0])) || len(v.Problems) != 1 {
		t.Fatalf("verify of a damaged chunk: %+v, %v", v, err)
	}
	if err := os.WriteFile(chunks[0], orig, 0o600); err != nil {
		t.Fatal(err)
	}
	pr, err := c.BackupPrune(ctx, cluster.BackupPruneRequest{URL: url, KeepLast: 1})
	if err != nil || len(pr.Deleted) != 1 || pr.ChunksDeleted != 1 {
		t.Fatalf("prune: %+v, %v", pr, err)
	}
	if _, err := c.BackupVerify(ctx, url, "", nil); err != nil {
		t.Fatalf("verify after prune: %v", err)
	}
}
