package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestDisasterRecoveryFromStateImage loses a whole cluster (3 data nodes
// killed, their disks gone) and makes a new one, of another shape (2 data
// nodes + a witness), with `keel init --restore-from URL`: every volume,
// file, snapshot and export comes back byte for byte on every data node,
// and the new cluster takes writes.
func TestDisasterRecoveryFromStateImage(t *testing.T) {
	old := startCluster(t, Shape{Data: 3, Steady: true})
	old.createVolume("data", 1<<30)
	old.createVolume("web", 256<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files := map[string]string{"data:/a/one": "", "data:/a/two": "", "data:/big": "", "web:/index.html": ""}
	sizes := map[string]int{"data:/a/one": 1000, "data:/a/two": 70 << 10, "data:/big": 5 << 20, "web:/index.html": 12345}
	for ref := range files {
		vol, p, _ := strings.Cut(ref, ":")
		data := content("dr:"+ref, sizes[ref])
		if err := old.Client.PutFile(ctx, vol, p, data, true); err != nil {
			t.Fatal(err)
		}
		files[ref] = sum(data)
	}
	if r := runKeel(t, time.Minute, "snapshot", "create", "data", "--name", "monday", "--dir", old.Dir); r.Code != 0 {
		t.Fatalf("snapshot: %s%s", r.Stdout, r.Stderr)
	}
	if r := runKeel(t, time.Minute, "volume", "export", "web", "--clients", "10.9.0.0/16", "--ro", "--dir", old.Dir); r.Code != 0 {
		t.Fatalf("export: %s%s", r.Stdout, r.Stderr)
	}
	wantVols, err := old.Client.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(t.TempDir(), "backups")
	r := runKeel(t, 3*time.Minute, "backup", "push", "--state", "--to", url, "--json", "--dir", old.Dir)
	var img cluster.BackupPushResult
	if err := json.Unmarshal([]byte(r.Stdout), &img); r.Code != 0 || err != nil {
		t.Fatalf("keel backup push --state: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	for _, m := range old.Members {
		m.Kill9()
	}

	// A URL without a state image is refused by init, which makes nothing.
	r = runKeel(t, time.Minute, "init", "--dir", filepath.Join(t.TempDir(), "x"), "--node", "n1=127.0.0.1",
		"--restore-from", "file://"+t.TempDir())
	if r.Code == 0 || !strings.Contains(r.Stderr, "no state image") {
		t.Fatalf("init --restore-from an empty store: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	start := time.Now()
	c := initCluster(t, Shape{Data: 2, Witness: true, Steady: true, InitArgs: []string{"--restore-from", url}})
	if c.ID == old.ID {
		t.Fatal("the restored cluster has the old cluster's id")
	}
	if b, _ := os.ReadFile(c.Members[0].Config); !strings.Contains(string(b), "restore_from") {
		t.Fatalf("keel init --restore-from wrote no restore_from into node.yaml:\n%s", b)
	}
	c.StartAll()
	c.WaitLeader(60*time.Second, "")
	gotVols, err := c.Client.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotVols) != len(wantVols) {
		t.Fatalf("volumes after restore: %+v, want %+v", gotVols, wantVols)
	}
	for i, v := range gotVols {
		w := wantVols[i]
		if v.Name != w.Name || v.SizeBytes != w.SizeBytes || v.UsedBytes != w.UsedBytes || v.Inodes != w.Inodes ||
			fmt.Sprint(v.Export) != fmt.Sprint(w.Export) {
			t.Errorf("volume %s: %+v, want %+v", w.Name, v, w)
		}
	}
	for _, m := range c.DataMembers() {
		waitFor(t, 30*time.Second, "node "+m.ID+" to hold every file", func() (bool, string) {
			for ref, want := range files {
				vol, p, _ := strings.Cut(ref, ":")
				if got, err := m.FileSum(vol, p); err != nil || got != want {
					return false, fmt.Sprintf("%s: %v", ref, err)
				}
			}
			return true, ""
		})
		st, err := m.Status()
		if err != nil || st.Seed == nil || st.Seed.Cluster != old.ID || st.Seed.BackupID != img.ID {
			t.Fatalf("node %s status seed: %+v (%v)", m.ID, st.Seed, err)
		}
	}
	t.Logf("restored cluster serving %d volumes %.1fs after keel init", len(gotVols), time.Since(start).Seconds())
	snaps, err := c.Client.Snapshots(ctx, "data")
	if err != nil || len(snaps) != 1 || snaps[0].Name != "monday" {
		t.Fatalf("snapshots after restore: %+v, %v", snaps, err)
	}
	if err := c.Client.PutFile(ctx, "data", "/after-restore", []byte("new life"), true); err != nil {
		t.Fatalf("write to the restored cluster: %v", err)
	}
	// Its replicas agree, and a restart is an ordinary restart.
	ms := c.DataMembers()
	ms[1].Restart()
	waitFor(t, 30*time.Second, "the data nodes to agree", func() (bool, string) {
		a, err1 := ms[0].Hash()
		b, err2 := ms[1].Hash()
		return err1 == nil && err2 == nil && a.Hash == b.Hash && a.AppliedIndex == b.AppliedIndex, fmt.Sprint(a, b, err1, err2)
	})
}

// TestUpRestoreFrom: `keel up --restore-from URL` on an empty directory
// makes a local cluster from a state image and serves its files; on a
// directory that holds a cluster it refuses.
func TestUpRestoreFrom(t *testing.T) {
	old := startCluster(t, Shape{Data: 1})
	old.createVolume("data", 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := content("up-restore", 300<<10)
	if err := old.Client.PutFile(ctx, "data", "/kept", data, true); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(t.TempDir(), "backups")
	if r := runKeel(t, time.Minute, "backup", "push", "--state", "--to", url, "--dir", old.Dir); r.Code != 0 {
		t.Fatalf("keel backup push --state: %s%s", r.Stdout, r.Stderr)
	}
	old.Members[0].Kill9()

	dir := filepath.Join(t.TempDir(), "keel")
	listen := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	up := startUp(t, dir, freeBasePort(t), listen, filepath.Join(t.TempDir(), "up.log"), "--nodes", "3", "--restore-from", url)
	var got string
	waitFor(t, 60*time.Second, "the restored file through the new cluster", func() (bool, string) {
		r := runKeel(t, 20*time.Second, "fs", "cat", "data:/kept", "--dir", dir)
		got = r.Stdout
		return r.Code == 0 && sum([]byte(got)) == sum(data), fmt.Sprintf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
	})
	up.interrupt(t)
	r := runKeel(t, 30*time.Second, "up", "--dir", dir, "--restore-from", url)
	if r.Code == 0 || !strings.Contains(r.Stderr, "already holds cluster") {
		t.Fatalf("keel up --restore-from on a used directory: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
