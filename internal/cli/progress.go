package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"

	"keel/internal/cluster"
)

// progressPrinter returns the progress callback of a backup command and
// end, to call once the operation has returned. When w is a terminal
// (golang.org/x/term) the progress is one line redrawn in place: a bar
// when the total is known, the bytes, the rate; end finishes that line.
// Otherwise (a pipe, a log file) each report is a plain line of its own.
// With quiet there is no progress.
func progressPrinter(w io.Writer, quiet bool) (report func(cluster.BackupProgress), end func()) {
	if quiet {
		return nil, func() {}
	}
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(p cluster.BackupProgress) { fmt.Fprintln(w, progressLine(p)) }, func() {}
	}
	var mu sync.Mutex
	drawn := false
	report = func(p cluster.BackupProgress) {
		width, _, err := term.GetSize(int(f.Fd()))
		if err != nil || width <= 0 {
			width = 80
		}
		mu.Lock()
		defer mu.Unlock()
		// \r back to the line's start; \x1b[K clears what a longer line left.
		fmt.Fprint(w, "\r"+progressBarLine(p, width-1)+"\x1b[K")
		drawn = true
	}
	end = func() {
		mu.Lock()
		defer mu.Unlock()
		if drawn {
			fmt.Fprintln(w)
			drawn = false
		}
	}
	return report, end
}

// progressLine is a report as a plain line.
func progressLine(p cluster.BackupProgress) string {
	rate := formatSize(uint64(p.Rate)) + "/s"
	of := ""
	if p.Total > 0 {
		of = " of " + formatSize(p.Total)
	}
	switch p.Op {
	case "push":
		unchanged := ""
		if p.Unchanged > 0 {
			unchanged = ", " + formatSize(p.Unchanged) + " unchanged"
		}
		return fmt.Sprintf("push: scanned %s%s%s (%s), uploaded %s, %d files, %s", formatSize(p.Bytes), of, unchanged, rate,
			formatSize(p.Uploaded), p.Files, seconds(p.Elapsed))
	case "restore":
		return fmt.Sprintf("restore: wrote %s%s (%s), %d files, %s", formatSize(p.Bytes), of, rate, p.Files, seconds(p.Elapsed))
	}
	return fmt.Sprintf("%s: %s%s (%s), %s", p.Op, formatSize(p.Bytes), of, rate, seconds(p.Elapsed))
}

// progressBarLine is a report as a terminal line of at most width
// characters: op, a bar and percentage (when the total is known), done and
// total bytes, rate, and for a push the bytes uploaded.
func progressBarLine(p cluster.BackupProgress, width int) string {
	done := p.Bytes + p.Unchanged // a push's unchanged files count as done
	figures := formatSize(done)
	if p.Total > 0 {
		figures += " / " + formatSize(p.Total)
	}
	figures += "  " + formatSize(uint64(p.Rate)) + "/s"
	if p.Op == "push" {
		figures += "  uploaded " + formatSize(p.Uploaded)
	}
	figures += fmt.Sprintf("  %d files  %s", p.Files, seconds(p.Elapsed))
	line := fmt.Sprintf("%-7s ", p.Op)
	if p.Total > 0 {
		frac := min(float64(done)/float64(p.Total), 1)
		barWidth := min(40, width-len(line)-len(figures)-8)
		if barWidth >= 10 {
			full := int(frac * float64(barWidth))
			line += "[" + strings.Repeat("=", full) + strings.Repeat(" ", barWidth-full) + "] "
		}
		line += fmt.Sprintf("%3.0f%%  ", 100*frac)
	}
	line += figures
	if r := []rune(line); len(r) > width && width > 0 {
		line = string(r[:width])
	}
	return line
}

// shellQuote returns s as one shell word: as it is when it holds only
// characters no shell treats specially, else in single quotes (an s3://
// URL's ?endpoint=…&region=… would otherwise be cut at the &).
func shellQuote(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
