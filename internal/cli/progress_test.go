package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"keel/internal/cluster"
)

func TestProgressBarLine(t *testing.T) {
	p := cluster.BackupProgress{Op: "push", Bytes: 256 << 20, Unchanged: 256 << 20, Total: 1 << 30, Uploaded: 3 << 20,
		Files: 12, Elapsed: 4, Rate: 64 << 20}
	line := progressBarLine(p, 120)
	for _, want := range []string{"push", "[" + strings.Repeat("=", 20) + strings.Repeat(" ", 20) + "]", " 50%",
		"512.0 MiB / 1.0 GiB", "64.0 MiB/s", "uploaded 3.0 MiB", "12 files", "4s"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if narrow := progressBarLine(p, 50); len([]rune(narrow)) > 50 || strings.Contains(narrow, "[") || !strings.Contains(narrow, "50%") {
		t.Errorf("a 50-column line: %q", narrow)
	}
	unknown := progressBarLine(cluster.BackupProgress{Op: "verify", Bytes: 5 << 20, Rate: 1 << 20}, 120)
	if strings.Contains(unknown, "%") || !strings.Contains(unknown, "5.0 MiB  1.0 MiB/s") {
		t.Errorf("without a total: %q", unknown)
	}
	over := progressBarLine(cluster.BackupProgress{Op: "restore", Bytes: 3 << 20, Total: 2 << 20}, 120)
	if !strings.Contains(over, "100%") {
		t.Errorf("past the total: %q", over)
	}
}

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	report, end := progressPrinter(&buf, false)
	report(cluster.BackupProgress{Op: "restore", Bytes: 1 << 20, Total: 2 << 20, Files: 3, Elapsed: 1.5, Rate: 1 << 20})
	report(cluster.BackupProgress{Op: "restore", Bytes: 2 << 20, Total: 2 << 20, Files: 5, Elapsed: 2, Rate: 1 << 20})
	end()
	want := "restore: wrote 1.0 MiB of 2.0 MiB (1.0 MiB/s), 3 files, 1.5s\nrestore: wrote 2.0 MiB of 2.0 MiB (1.0 MiB/s), 5 files, 2s\n"
	if buf.String() != want {
		t.Errorf("plain lines:\n%q\nwant\n%q", buf.String(), want)
	}
	// A file that is no terminal gets plain lines too.
	f, err := os.CreateTemp(t.TempDir(), "progress")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	report, end = progressPrinter(f, false)
	report(cluster.BackupProgress{Op: "verify", Bytes: 1 << 20})
	end()
	if b, _ := os.ReadFile(f.Name()); strings.Contains(string(b), "\r") || !strings.HasSuffix(string(b), "\n") {
		t.Errorf("a file got %q", b)
	}
	if report, _ := progressPrinter(&buf, true); report != nil {
		t.Error("quiet still reports")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"file:///srv/backups@20261125T154000Z-1a2b3c": "file:///srv/backups@20261125T154000Z-1a2b3c",
		"s3://b/p?endpoint=http://h:9000&region=x@ID": "'s3://b/p?endpoint=http://h:9000&region=x@ID'",
		"it's": `'it'\''s'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
