package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"keel/internal/cluster"
)

// TestBackupFile backs a volume up to a file:// store with the keel CLI,
// changes a file, backs up again (only the change is uploaded), verifies,
// restores both backups into new volumes and compares every file's SHA-256
// on every data node; then damages a chunk (verify and restore name it),
// and prunes.
func TestBackupFile(t *testing.T) {
	c := startCluster(t, Shape{Data: 3, Steady: true})
	c.createVolume("data", 1<<30)
	files := map[string]int{
		"/docs/a.txt":   10 << 10,
		"/docs/b.bin":   3 << 20,
		"/big/blob":     8 << 20,
		"/empty":        0,
		"/deep/x/y/z":   200<<10 + 17,
		"/docs/copy-of": 3 << 20, // same content as /docs/b.bin: stored once
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var total uint64
	for p, size := range files {
		data := content("backup:"+p, size)
		if p == "/docs/copy-of" {
			data = content("backup:/docs/b.bin", size)
		} else {
			total += uint64(size)
		}
		if err := c.Client.PutFile(ctx, "data", p, data, true); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	leader := c.WaitLeader(30*time.Second, "")
	firstSums := backupSums(t, leader, "data", files)

	store := filepath.Join(t.TempDir(), "backups")
	url := "file://" + store
	first := backupPushCLI(t, c, url)
	if first.BytesUploaded != total || first.Files != int64(len(files)) {
		t.Fatalf("first push uploaded %d bytes for %d files, want %d bytes (the copy stored once) for %d",
			first.BytesUploaded, first.Files, total, len(files))
	}

	// Change 1000 bytes in the middle of the 8 MiB file.
	blob := content("backup:/big/blob", 8<<20)
	copy(blob[4<<20+100:], content("changed", 1000))
	if err := c.Client.PutFile(ctx, "data", "/big/blob", blob, false); err != nil {
		t.Fatal(err)
	}
	second := backupPushCLI(t, c, url)
	t.Logf("incremental push: scanned %d bytes, uploaded %d bytes in %d chunks, %d chunks reused",
		second.BytesScanned, second.BytesUploaded, second.ChunksUploaded, second.ChunksReused)
	if second.BytesUploaded < 1000 || second.BytesUploaded > 128<<10 || second.ChunksReused == 0 {
		t.Fatalf("second push uploaded %d bytes for a 1000-byte change (want one or two 64 KiB chunks)", second.BytesUploaded)
	}

	if r := runKeel(t, 2*time.Minute, "backup", "verify", url, "--dir", c.Dir); r.Code != 0 || !strings.Contains(r.Stdout, "ok: 2 backups") {
		t.Fatalf("keel backup verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := runKeel(t, time.Minute, "backup", "list", url, "--json", "--dir", c.Dir)
	var list []cluster.BackupInfo
	if err := json.Unmarshal([]byte(r.Stdout), &list); r.Code != 0 || err != nil || len(list) != 2 || list[1].ID != second.ID {
		t.Fatalf("keel backup list --json: exit %d, %v: %s%s", r.Code, err, r.Stdout, r.Stderr)
	}

	// The latest backup restores the volume as it is now; the first, as it
	// was then.
	backupRestoreCLI(t, c, url, "restored")
	backupCompareTrees(t, c, "data", "restored", "/")
	backupRestoreCLI(t, c, url+"@"+first.ID, "first")
	for _, m := range c.DataMembers() {
		waitFor(t, 30*time.Second, "the restored volumes on "+m.ID, func() (bool, string) {
			now, then := backupSums(t, m, "restored", files), backupSums(t, m, "first", files)
			want := backupSums(t, leader, "data", files)
			for p := range files {
				if now[p] != want[p] || then[p] != firstSums[p] {
					return false, p + " differs"
				}
			}
			return true, ""
		})
	}
	if r := runKeel(t, time.Minute, "backup", "restore", url, "--volume", "restored", "--dir", c.Dir); r.Code == 0 || !strings.Contains(r.Stderr, "exists") {
		t.Fatalf("restore into an existing volume: exit %d: %s", r.Code, r.Stderr)
	}

	// A damaged chunk is named by verify and stops a restore.
	undo := backupDamageChunk(t, c, filepath.Join(store, "chunks", "*", "*"), url, url+"@"+first.ID, 3)
	undo()

	// Prune the first backup: the old version of the changed chunk goes.
	r = runKeel(t, time.Minute, "backup", "prune", url, "--keep-last", "1", "--json", "--dir", c.Dir)
	var pr cluster.BackupPruneResult
	if err := json.Unmarshal([]byte(r.Stdout), &pr); r.Code != 0 || err != nil || len(pr.Deleted) != 1 || pr.ChunksDeleted != second.ChunksUploaded {
		t.Fatalf("keel backup prune: exit %d, %v: %s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if r := runKeel(t, 2*time.Minute, "backup", "verify", url, "--dir", c.Dir); r.Code != 0 {
		t.Fatalf("verify after prune: exit %d: %s", r.Code, r.Stderr)
	}
}

func backupPushCLI(t *testing.T, c *Cluster, url string) cluster.BackupPushResult {
	t.Helper()
	r := runKeel(t, 3*time.Minute, "backup", "push", "data", "--to", url, "--json", "--dir", c.Dir)
	var res cluster.BackupPushResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); r.Code != 0 || err != nil {
		t.Fatalf("keel backup push: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "push: scanned") {
		t.Errorf("keel backup push printed no progress: %q", r.Stderr)
	}
	return res
}

func backupRestoreCLI(t *testing.T, c *Cluster, ref, volume string) {
	t.Helper()
	r := runKeel(t, 3*time.Minute, "backup", "restore", ref, "--volume", volume, "--dir", c.Dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "into volume "+volume) {
		t.Fatalf("keel backup restore %s --volume %s: exit %d\n%s%s", ref, volume, r.Code, r.Stdout, r.Stderr)
	}
}

// backupSums returns the SHA-256 of each file as node m stores it ("" if it
// cannot read it).
func backupSums(t *testing.T, m *Member, vol string, files map[string]int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p := range files {
		out[p], _ = m.FileSum(vol, p)
	}
	return out
}

// backupCompareTrees compares two volumes' listings from dir down: names,
// types, sizes, modes and mtimes.
func backupCompareTrees(t *testing.T, c *Cluster, a, b, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	la, err := c.Client.List(ctx, a, dir)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := c.Client.List(ctx, b, dir)
	if err != nil {
		t.Fatal(err)
	}
	// A restore makes each directory's subdirectories first: compare by name.
	sort.Slice(la, func(i, j int) bool { return la[i].Name < la[j].Name })
	sort.Slice(lb, func(i, j int) bool { return lb[i].Name < lb[j].Name })
	if len(la) != len(lb) {
		t.Fatalf("%s: %d entries in %s, %d in %s", dir, len(la), a, len(lb), b)
	}
	for i := range la {
		x, y := la[i], lb[i]
		x.Ino, y.Ino = 0, 0
		if !x.Mtime.Equal(y.Mtime) || x.Name != y.Name || x.Type != y.Type || x.Size != y.Size || x.Mode != y.Mode {
			t.Errorf("%s: %+v in %s, %+v in %s", dir, la[i], a, lb[i], b)
		}
		if x.Type == "dir" {
			backupCompareTrees(t, c, a, b, strings.TrimSuffix(dir, "/")+"/"+x.Name)
		}
	}
}

// backupDamageChunk alters one byte of one of the chunk files glob matches
// (the object as the backup store keeps it), checks that `keel backup
// verify URL` and `keel backup restore REF` fail naming it and that the
// failed restore leaves the cluster with its vols volumes, and returns a
// function that puts the chunk back.
func backupDamageChunk(t *testing.T, c *Cluster, glob, url, ref string, vols int) (undo func()) {
	t.Helper()
	chunks, _ := filepath.Glob(glob)
	sort.Strings(chunks)
	if len(chunks) == 0 {
		t.Fatalf("no chunk files match %s", glob)
	}
	victim := chunks[len(chunks)/2]
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte{}, orig...)
	bad[len(bad)/2] ^= 0x55
	if err := os.WriteFile(victim, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(victim)
	if r := runKeel(t, 2*time.Minute, "backup", "verify", url, "--dir", c.Dir); r.Code == 0 || !strings.Contains(r.Stderr, name) {
		t.Fatalf("verify with chunk %s altered: exit %d: %s", name, r.Code, r.Stderr)
	}
	r := runKeel(t, 2*time.Minute, "backup", "restore", ref, "--volume", "bad", "--dir", c.Dir)
	if r.Code == 0 || !strings.Contains(r.Stderr, name) {
		t.Fatalf("restore with chunk %s altered: exit %d: %s", name, r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	t.Logf("restore refused: %s", lines[len(lines)-1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, _ := c.Client.Volumes(ctx); len(got) != vols {
		t.Fatalf("an aborted restore left a volume: %+v", got)
	}
	return func() {
		if err := os.WriteFile(victim, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
