package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFileContent(t *testing.T) {
	a, b := fileContent(7), fileContent(8)
	if len(a) != failoverFileSize || len(b) != failoverFileSize {
		t.Fatalf("sizes %d, %d; want %d", len(a), len(b), failoverFileSize)
	}
	if !bytes.Equal(a, fileContent(7)) {
		t.Error("file 7's content differs between two calls")
	}
	if bytes.Equal(a, b) {
		t.Error("files 7 and 8 have the same content")
	}
	if bytes.Equal(a[:2048], a[2048:]) {
		t.Error("the two halves of a file are the same: a misplaced block would go unseen")
	}
	if fileName(42) != "f000042" {
		t.Errorf("fileName(42) = %q", fileName(42))
	}
}

// at is a time s seconds after a fixed origin.
func at(s float64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

func op(n int, start, end float64, err string) opRecord {
	return opRecord{N: n, Start: at(start), End: at(end), Err: err, Acked: err == ""}
}

func TestGapAround(t *testing.T) {
	ops := []opRecord{
		op(0, 0, 1, ""),
		op(1, 1, 2, ""),
		op(2, 2, 3, "CREATE f000002: timeout"), // a failure is neither end of the gap
		{N: 3, Start: at(3), End: at(3.5), Stopped: true, Err: "context canceled"},
		op(4, 2.5, 6, ""), // started before the kill, answered after it: the first success after
		op(5, 6, 7, ""),
	}
	before, after, ok := gapAround(ops, at(4))
	if !ok || before.N != 1 || after.N != 4 {
		t.Fatalf("gapAround = %d, %d, %t; want ops 1 and 4", before.N, after.N, ok)
	}
	if gap := after.End.Sub(before.End); gap != 4*time.Second {
		t.Errorf("gap %v, want 4s", gap)
	}
	if _, _, ok := gapAround(ops, at(8)); ok {
		t.Error("a gap with no success after the kill")
	}
	if _, _, ok := gapAround(ops, at(0.5)); ok {
		t.Error("a gap with no success before the kill")
	}
}

func TestTrialOfAndFailuresSince(t *testing.T) {
	kills := []time.Time{at(10), at(20)}
	for _, c := range []struct {
		t    float64
		want int
	}{{5, 0}, {10, 1}, {19.9, 1}, {20, 2}, {99, 2}} {
		if got := trialOf(kills, at(c.t)); got != c.want {
			t.Errorf("trialOf(%v) = %d, want %d", c.t, got, c.want)
		}
	}
	ops := []opRecord{op(0, 0, 5, "x"), op(1, 9, 11, "y"), op(2, 11, 12, ""), {N: 3, End: at(13), Err: "z", Stopped: true}}
	if n := failuresSince(ops, at(10)); n != 1 {
		t.Errorf("failuresSince = %d, want 1 (failures before, successes and stopped ones do not count)", n)
	}
}

func TestAddOps(t *testing.T) {
	r := &FailoverResult{Trials: []Trial{
		{N: 1, KilledAt: at(10), GapMs: 1500, Resumed: true},
		{N: 2, KilledAt: at(20), GapMs: 3500, Resumed: true},
		{N: 3, KilledAt: at(30), GapMs: 900, Resumed: true},
	}}
	ops := []opRecord{
		op(0, 1, 2, "READ f000000: warm-up failure"),
		op(1, 2, 3, ""),
		op(2, 9, 12, "WRITE f000002: stale"),
		op(3, 21, 22, "CREATE f000003: io"),
		op(4, 22, 23, "CREATE f000004: io"),
		{N: -1, Start: at(24), End: at(25), Err: "connect to the tunnel: refused"},
		op(5, 31, 32, ""),
		{N: 6, Start: at(40), End: at(41), Err: "context canceled", Acked: true, Stopped: true},
	}
	ops[2].Acked = true // acknowledged, then the read failed
	r.addOps(ops)
	if r.Ops != 7 || r.OKOps != 2 || r.StoppedOps != 1 || r.Acked != 4 {
		t.Errorf("ops %d ok %d stopped %d acked %d; want 7, 2, 1, 4", r.Ops, r.OKOps, r.StoppedOps, r.Acked)
	}
	if r.ClientErrors != 5 || r.ErrorsBefore != 1 {
		t.Errorf("client errors %d (%d before); want 5 (1 before)", r.ClientErrors, r.ErrorsBefore)
	}
	if got := []int{r.Trials[0].Errors, r.Trials[1].Errors, r.Trials[2].Errors}; got[0] != 1 || got[1] != 3 || got[2] != 0 {
		t.Errorf("errors per trial %v; want [1 3 0]", got)
	}
	if r.GapMedianMs != 1500 || r.GapMaxMs != 3500 {
		t.Errorf("gap median %v max %v; want 1500, 3500", r.GapMedianMs, r.GapMaxMs)
	}
	if len(r.ErrorExamples) != 5 || !strings.Contains(r.ErrorExamples[1], "trial 1") {
		t.Errorf("examples %q", r.ErrorExamples)
	}
}

// trials makes n resumed trials with the given gaps in ms, repeating the
// last.
func trials(n int, gaps ...float64) []Trial {
	out := make([]Trial, n)
	for i := range out {
		out[i] = Trial{N: i + 1, Resumed: true, GapMs: gaps[min(i, len(gaps)-1)]}
	}
	return out
}

func failoverChecks(r *FailoverResult) map[string]bool {
	r.addOps(nil)
	return passes(EvaluateFailover(r))
}

func TestEvaluateFailover(t *testing.T) {
	const med, mx, errs, lost = "median gap ≤ 2 s", "max gap ≤ 4 s", "zero client-visible errors", "zero lost writes"
	// At the limits: 5 trials of 2 s and 5 of 4 s have a nearest-rank median of 2 s.
	r := &FailoverResult{Trials: trials(10, 2000, 2000, 2000, 2000, 2000, 4000), Acked: 0}
	got := failoverChecks(r)
	for _, name := range []string{med, mx, errs, lost} {
		if !got[name] {
			t.Errorf("%s fails at the limit", name)
		}
	}
	r = &FailoverResult{Trials: trials(10, 2000, 2000, 2000, 2000, 2001, 4001)}
	if got := failoverChecks(r); got[med] || got[mx] {
		t.Errorf("just past the limits: %v", got)
	}
	// Fewer than MinTrials, or a trial that never resumed: the gaps do not pass.
	r = &FailoverResult{Trials: trials(3, 100)}
	if got := failoverChecks(r); got[med] || got[mx] {
		t.Errorf("3 trials pass the gap checks: %v", got)
	}
	r = &FailoverResult{Trials: trials(10, 100)}
	r.Trials[4].Resumed = false
	if got := failoverChecks(r); got[med] || got[mx] {
		t.Errorf("a trial that never resumed passes: %v", got)
	}
	// Errors and lost writes.
	r = &FailoverResult{Trials: trials(10, 100), ClientErrors: 1, Acked: 5, Lost: LostWrites{Checked: 5, Wrong: 1}}
	if got := passes(EvaluateFailover(r)); got[errs] || got[lost] {
		t.Errorf("an error and a wrong file pass: %v", got)
	}
	r = &FailoverResult{Trials: trials(10, 100), Acked: 5, Lost: LostWrites{Checked: 4}}
	if got := passes(EvaluateFailover(r)); got[lost] {
		t.Error("lost writes pass with an acknowledged file not read back")
	}
}

func TestLostWritesAdd(t *testing.T) {
	var l LostWrites
	l.add(1, checkOK, nil)
	l.add(2, checkMissing, nil)
	l.add(3, checkWrong, nil)
	l.add(4, checkUnreadable, errTest)
	if l.Missing != 1 || l.Wrong != 1 || l.Unreadable != 1 || l.Total() != 3 {
		t.Errorf("%+v", l)
	}
	if len(l.Examples) != 3 || !strings.HasPrefix(l.Examples[0], "f000002: missing") || !strings.Contains(l.Examples[2], "boom") {
		t.Errorf("examples %q", l.Examples)
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("boom")

func TestOthersLess(t *testing.T) {
	o := Others{ProcessesPercent: 30, KernelThreadsPercent: 5}
	if got := o.less(time.Second, 10*time.Second); got.ProcessesPercent != 20 || got.KernelThreadsPercent != 5 {
		t.Errorf("less: %+v; want processes 20 %%", got)
	}
	if got := o.less(5*time.Second, 10*time.Second); got.ProcessesPercent != 0 {
		t.Errorf("less past zero: %+v; want 0", got)
	}
}

func TestWriteFailoverText(t *testing.T) {
	r := &FailoverResult{CPUs: 2, DataNodes: 3, TrialsRequested: 10, Trials: trials(10, 1200)}
	r.Trials[9].Resumed = false
	r.addOps(nil)
	r.Checks = EvaluateFailover(r)
	var b bytes.Buffer
	WriteFailoverText(&b, r)
	out := b.String()
	for _, want := range []string{"trial", "never", "MISS  median gap", "for scale: Heartbeat"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
