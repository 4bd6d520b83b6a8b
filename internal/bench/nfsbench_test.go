package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNFSURLAndPorts(t *testing.T) {
	if got := nfsURL("127.0.0.1", 2049, 20048, "seq.bin"); got != "nfs://127.0.0.1/data/seq.bin?nfsport=2049&mountport=20048" {
		t.Errorf("nfsURL = %q", got)
	}
	if got := seqURL("127.0.0.1:4000", "127.0.0.1:4001"); got != "nfs://127.0.0.1/data/seq.bin?nfsport=4000&mountport=4001" {
		t.Errorf("seqURL = %q", got)
	}
	if h, p := splitPort("[::1]:2049"); h != "::1" || p != 2049 {
		t.Errorf("splitPort = %q, %d", h, p)
	}
	if cpTimeout(256<<20) != 2*time.Minute+256*time.Second {
		t.Errorf("cpTimeout(256 MiB) = %v", cpTimeout(256<<20))
	}
	if got := mibPerSec(256<<20, 2); got != 128 {
		t.Errorf("mibPerSec = %v, want 128", got)
	}
}

func TestSameFiles(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	if err := writeRandomFile(path("a"), 2<<20); err != nil { // exactly two compare chunks
		t.Fatal(err)
	}
	a, err := os.ReadFile(path("a"))
	if err != nil || len(a) != 2<<20 {
		t.Fatalf("random file: %d bytes, %v", len(a), err)
	}
	write := func(n string, b []byte) {
		if err := os.WriteFile(path(n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("same", a)
	changed := bytes.Clone(a)
	changed[1<<20+5] ^= 1
	write("changed", changed)
	write("short", a[:len(a)-1])
	write("long", append(bytes.Clone(a), 0))
	if err := sameFiles(path("a"), path("same")); err != nil {
		t.Errorf("identical files: %v", err)
	}
	if err := sameFiles(path("a"), path("changed")); err == nil || !strings.Contains(err.Error(), "byte 1048581") {
		t.Errorf("one byte changed: %v", err)
	}
	for _, n := range []string{"short", "long"} {
		if err := sameFiles(path("a"), path(n)); err == nil {
			t.Errorf("%s file: no difference found", n)
		}
	}
	if err := writeRandomFile(path("a"), 1); err == nil {
		t.Error("writeRandomFile replaced an existing file")
	}
}

func TestGaneshaConfig(t *testing.T) {
	conf := ganeshaConfig("/tmp/run dir/export", 40001, 40002)
	for _, want := range []string{
		"NFS_Port = 40001;", "MNT_Port = 40002;", "Enable_NLM = false;", "Protocols = 3;", "Graceless = true;",
		"Export_Id = 1;", `Path = "/tmp/run dir/export";`, "Pseudo = /data;", "Access_Type = RW;",
		"Squash = No_Root_Squash;", "Transports = TCP;", "SecType = sys;", "Name = VFS;", "Mount_Path_Pseudo = true;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Errorf("unbalanced braces:\n%s", conf)
	}
	if v := parseGaneshaVersion("NFS-Ganesha Release = V4.3\n"); v != "V4.3" {
		t.Errorf("parseGaneshaVersion = %q", v)
	}
	if v := parseGaneshaVersion("garbage"); v != "" {
		t.Errorf("parseGaneshaVersion(garbage) = %q", v)
	}
	if msg := (&errNotInstalled{"ganesha.nfsd"}).Error(); !strings.Contains(msg, GaneshaInstall) {
		t.Errorf("not-installed message %q lacks the install command", msg)
	}
}

// nfsResult builds a run from write, read and metadata figures of keel 1,
// keel 3 and Ganesha.
func nfsResult(k1, k3, g [3]float64) *NFSResult {
	srv := func(kind string, v [3]float64) NFSServerResult {
		return NFSServerResult{Kind: kind, Name: kind, Write: Phase{MiBps: v[0]}, Read: Phase{MiBps: v[1]}, Meta: MetaResult{OpsPerSec: v[2]}}
	}
	return &NFSResult{Servers: []NFSServerResult{srv(KindKeel1, k1), srv(KindKeel3, k3), srv(KindGanesha, g)}}
}

const (
	checkW1 = "1-node write ≥ Ganesha"
	checkR1 = "1-node read ≥ Ganesha"
	checkM1 = "1-node metadata ≥ Ganesha"
	checkW3 = "3-node write ≥ 0.35 × Ganesha"
)

func TestEvaluateNFS(t *testing.T) {
	// At the limits every check passes; just below, none.
	got := passes(EvaluateNFS(nfsResult([3]float64{100, 200, 3000}, [3]float64{35, 0, 0}, [3]float64{100, 200, 3000})))
	for _, name := range []string{checkW1, checkR1, checkM1, checkW3} {
		if !got[name] {
			t.Errorf("%s fails at the limit", name)
		}
	}
	got = passes(EvaluateNFS(nfsResult([3]float64{99.9, 199, 2999}, [3]float64{34.9, 0, 0}, [3]float64{100, 200, 3000})))
	for _, name := range []string{checkW1, checkR1, checkM1, checkW3} {
		if got[name] {
			t.Errorf("%s passes below the limit", name)
		}
	}
	// Without Ganesha, or with a failed load, nothing passes, and the
	// detail says why.
	r := nfsResult([3]float64{100, 200, 3000}, [3]float64{100, 0, 0}, [3]float64{})
	r.Servers[2].NotInstalled = (&errNotInstalled{"ganesha.nfsd"}).Error()
	for _, c := range EvaluateNFS(r) {
		if c.Pass || !strings.Contains(c.Detail, "apt-get install") {
			t.Errorf("Ganesha missing: %+v", c)
		}
	}
	r = nfsResult([3]float64{100, 200, 3000}, [3]float64{100, 0, 0}, [3]float64{1, 1, 1})
	r.Servers[0].MetaCPU.Error = "connection closed"
	if got := passes(EvaluateNFS(r)); got[checkM1] || !got[checkW1] {
		t.Errorf("keel's metadata load failed: %v", got)
	}
}

func TestWriteNFSText(t *testing.T) {
	r := nfsResult([3]float64{100, 200, 3000}, [3]float64{50, 150, 1000}, [3]float64{})
	r.Servers[0].Durability = "committed on 1 of 1 nodes, each fsync'd"
	r.Servers[0].Probe = ProbeResult{Writes: map[string]int{"UNSTABLE": 4}, Commits: 1, Answered: map[string]int{"FILE_SYNC": 4}}
	r.Servers[1].Read.Note = "the leader moved from n1 to n2 during the load"
	r.Servers[2].NotInstalled = (&errNotInstalled{"ganesha.nfsd"}).Error()
	r.Checks = EvaluateNFS(r)
	var b bytes.Buffer
	WriteNFSText(&b, r)
	out := b.String()
	for _, want := range []string{"FILE_SYNC: committed on 1 of 1 nodes", "150.0*", "the leader moved", "not installed", "4 WRITE UNSTABLE, 1 COMMIT", "MISS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
