package bench

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// FailoverResult holds every figure of a fail-over run; it is what
// `keel bench failover --json` prints.
type FailoverResult struct {
	Dir              string     `json:"dir"` // the run directory (removed afterwards)
	CPUs             int        `json:"cpus"`
	DataNodes        int        `json:"data_nodes"`
	HeartbeatTimeout string     `json:"raft_heartbeat_timeout"`
	ElectionTimeout  string     `json:"raft_election_timeout"`
	LeaderLease      string     `json:"raft_leader_lease_timeout"`
	TrialsRequested  int        `json:"trials_requested"`
	Trials           []Trial    `json:"trials"`
	Ops              int        `json:"operations"`
	OKOps            int        `json:"operations_ok"`
	StoppedOps       int        `json:"operations_cut_short"` // in flight when the client was stopped at the end
	Acked            int        `json:"writes_acknowledged"`
	ClientErrors     int        `json:"client_errors"`        // all of them, before the first kill included
	ErrorsBefore     int        `json:"client_errors_warmup"` // before the first kill
	ErrorExamples    []string   `json:"client_error_examples,omitempty"`
	Lost             LostWrites `json:"lost_writes"`
	GapMedianMs      float64    `json:"gap_median_ms"` // nearest rank
	GapMaxMs         float64    `json:"gap_max_ms"`
	Checks           []Check    `json:"checks"`
}

// Trial is one kill -9 of the active node.
type Trial struct {
	N                int       `json:"trial"`
	Killed           string    `json:"killed"`
	KilledPID        int       `json:"killed_pid"`
	KilledAt         time.Time `json:"killed_at"`
	NewActive        string    `json:"new_active"`
	Resumed          bool      `json:"resumed"`           // operations succeeded again within resumeMax
	GapMs            float64   `json:"gap_ms"`            // last success before the kill → first success after it; if not resumed, the time waited
	KillToResumeMs   float64   `json:"kill_to_resume_ms"` // the kill → first success after it
	ElectedMs        float64   `json:"elected_ms"`        // the kill → the new leader's active-since; 0 if unknown
	ElectedReason    string    `json:"elected_reason,omitempty"`
	TunnelMs         float64   `json:"tunnel_ms"`     // the kill → the tunnel connected to the new active node; 0 if unknown
	Errors           int       `json:"client_errors"` // failed operations from this kill to the next
	TunnelReconnects int64     `json:"tunnel_reconnects"`
	TunnelResent     int64     `json:"tunnel_resent"`
	CaughtUp         bool      `json:"caught_up"`
	CatchUpIndex     uint64    `json:"catch_up_index"`   // the leader's commit index when the restarted node first answered
	CatchUpSeconds   float64   `json:"catch_up_seconds"` // restart → applied that index
	Others           Others    `json:"others"`           // other processes during the trial
}

// LostWrites is the final read-back of every acknowledged file.
type LostWrites struct {
	Checked    int      `json:"checked"`
	Missing    int      `json:"missing"`
	Wrong      int      `json:"wrong"`
	Unreadable int      `json:"unreadable"` // still failing in transport after three tries: counted as lost
	Examples   []string `json:"examples,omitempty"`
}

// Total is every acknowledged write not read back intact.
func (l LostWrites) Total() int { return l.Missing + l.Wrong + l.Unreadable }

const maxExamples = 10

func (l *LostWrites) add(i int, r checkResult, err error) {
	var what string
	switch r {
	case checkOK:
		return
	case checkMissing:
		l.Missing++
		what = "missing"
	case checkWrong:
		l.Wrong++
		what = "content differs"
	default:
		l.Unreadable++
		what = fmt.Sprintf("unreadable: %v", err)
	}
	if len(l.Examples) < maxExamples {
		l.Examples = append(l.Examples, fileName(i)+": "+what)
	}
}

// Targets of the design that EvaluateFailover checks.
const (
	TargetGapMedian = 2 * time.Second // at most
	TargetGapMax    = 4 * time.Second // at most
)

// gapAround returns, of ops in any order, the last success that ended
// before t and the first that ended after it.
func gapAround(ops []opRecord, t time.Time) (before, after opRecord, ok bool) {
	var haveBefore, haveAfter bool
	for _, r := range ops {
		if !r.ok() {
			continue
		}
		if r.End.Before(t) {
			if !haveBefore || r.End.After(before.End) {
				before, haveBefore = r, true
			}
		} else if !haveAfter || r.End.Before(after.End) {
			after, haveAfter = r, true
		}
	}
	return before, after, haveBefore && haveAfter
}

// failuresSince counts the failed operations that ended at or after t.
func failuresSince(ops []opRecord, t time.Time) int {
	n := 0
	for _, r := range ops {
		if r.failed() && !r.End.Before(t) {
			n++
		}
	}
	return n
}

// trialOf returns the trial (1-based) whose window [kill, next kill) holds
// t, or 0 before the first kill; kills are in order.
func trialOf(kills []time.Time, t time.Time) int {
	n := 0
	for i, k := range kills {
		if !t.Before(k) {
			n = i + 1
		}
	}
	return n
}

// addOps counts the operations and assigns each failure to the trial it
// happened in, and sums up the gaps.
func (r *FailoverResult) addOps(ops []opRecord) {
	kills := make([]time.Time, len(r.Trials))
	for i, t := range r.Trials {
		kills[i] = t.KilledAt
	}
	for _, op := range ops {
		if op.N >= 0 {
			r.Ops++
		}
		if op.Acked {
			r.Acked++
		}
		if op.ok() {
			r.OKOps++
		}
		if op.Stopped {
			r.StoppedOps++
		}
		if !op.failed() {
			continue
		}
		r.ClientErrors++
		k := trialOf(kills, op.End)
		if k == 0 {
			r.ErrorsBefore++
		} else {
			r.Trials[k-1].Errors++
		}
		if len(r.ErrorExamples) < maxExamples {
			r.ErrorExamples = append(r.ErrorExamples, fmt.Sprintf("trial %d, after %.3f s: %s", k, op.End.Sub(op.Start).Seconds(), op.Err))
		}
	}
	gaps := make([]time.Duration, 0, len(r.Trials))
	for _, t := range r.Trials {
		gaps = append(gaps, time.Duration(t.GapMs*float64(time.Millisecond)))
	}
	slices.Sort(gaps)
	if len(gaps) > 0 {
		r.GapMedianMs, r.GapMaxMs = ms(percentile(gaps, 50)), ms(gaps[len(gaps)-1])
	}
}

// EvaluateFailover compares r with the targets: median and max gap, client
// errors and lost writes. With fewer than MinTrials trials, or a trial that
// never resumed, the gap checks do not pass.
func EvaluateFailover(r *FailoverResult) []Check {
	enough := len(r.Trials) >= MinTrials
	allResumed := true
	for _, t := range r.Trials {
		allResumed = allResumed && t.Resumed
	}
	note := ""
	if !enough {
		note = fmt.Sprintf(" (only %d trials: judged on at least %d)", len(r.Trials), MinTrials)
	} else if !allResumed {
		note = " (a trial never resumed)"
	}
	limMed, limMax := ms(TargetGapMedian), ms(TargetGapMax)
	return []Check{
		{Name: "median gap ≤ 2 s", Value: r.GapMedianMs, Limit: limMed, Pass: enough && allResumed && r.GapMedianMs <= limMed,
			Detail: fmt.Sprintf("%.3f s over %d trials%s", r.GapMedianMs/1000, len(r.Trials), note)},
		{Name: "max gap ≤ 4 s", Value: r.GapMaxMs, Limit: limMax, Pass: enough && allResumed && r.GapMaxMs <= limMax,
			Detail: fmt.Sprintf("%.3f s%s", r.GapMaxMs/1000, note)},
		{Name: "zero client-visible errors", Value: float64(r.ClientErrors), Limit: 0, Pass: r.ClientErrors == 0,
			Detail: fmt.Sprintf("%d errors in %d operations", r.ClientErrors, r.Ops)},
		{Name: "zero lost writes", Value: float64(r.Lost.Total()), Limit: 0, Pass: r.Lost.Total() == 0 && r.Lost.Checked == r.Acked,
			Detail: fmt.Sprintf("%d of %d acknowledged writes missing or wrong (%d read back)", r.Lost.Total(), r.Acked, r.Lost.Checked)},
	}
}

// ForScale is what other high-availability NFS setups take to fail over.
const ForScale = "Heartbeat (the seed) 10 s deadtime + service start; keepalived VRRP ~3-4 s; Gluster/Ganesha HA ~20 s + 90 s grace"

// WriteFailoverText prints r: one line per trial, the totals and the
// target checks.
func WriteFailoverText(w io.Writer, r *FailoverResult) {
	fmt.Fprintf(w, "keel bench failover: %d data nodes (`keel serve` processes), an in-process tunnel, one NFSv3 client through it; %d CPUs\n",
		r.DataNodes, r.CPUs)
	fmt.Fprintf(w, "each operation: CREATE f<i>, WRITE 4 KiB FILE_SYNC, READ it back and compare; raft heartbeat %s, election %s, lease %s (defaults)\n",
		r.HeartbeatTimeout, r.ElectionTimeout, r.LeaderLease)
	fmt.Fprintf(w, "each trial: kill -9 the active node, wait until operations have succeeded again for %s, restart it, wait until it has caught up\n",
		resumedFor)
	fmt.Fprintf(w, "gap: the last successful operation before the kill to the first one after it; run directory %s (removed)\n\n", r.Dir)
	const row = "%5s  %-6s %-7s %-6s %8s %9s %9s %9s %6s %10s %6s %9s  %s\n"
	fmt.Fprintf(w, row, "trial", "killed", "pid", "active", "gap s", "elected s", "tunnel s", "kill→ok s", "errors", "reconnects", "resent", "catch-up", "others, % of one CPU")
	for _, t := range r.Trials {
		gap, resume := fmt.Sprintf("%.3f", t.GapMs/1000), fmt.Sprintf("%.3f", t.KillToResumeMs/1000)
		if !t.Resumed {
			gap, resume = fmt.Sprintf(">%.0f", t.GapMs/1000), "never"
		}
		catch := fmt.Sprintf("%.1f s", t.CatchUpSeconds)
		if !t.CaughtUp {
			catch = fmt.Sprintf(">%.0f s", t.CatchUpSeconds)
		}
		fmt.Fprintf(w, row, fmt.Sprint(t.N), t.Killed, fmt.Sprint(t.KilledPID), orNone(t.NewActive), gap,
			secondsOrDash(t.ElectedMs), secondsOrDash(t.TunnelMs), resume,
			fmt.Sprint(t.Errors), fmt.Sprint(t.TunnelReconnects), fmt.Sprint(t.TunnelResent), catch, othersText(t.Others))
	}
	fmt.Fprintf(w, "\noperations: %d, %d succeeded, %d cut short by the end of the run; %d writes acknowledged; %d client-visible errors (%d before the first kill)\n",
		r.Ops, r.OKOps, r.StoppedOps, r.Acked, r.ClientErrors, r.ErrorsBefore)
	fmt.Fprintln(w, "elected: the kill → the new leader's active-since; tunnel: the kill → the tunnel's connection to it; kill→ok: the kill → the first success")
	fmt.Fprintf(w, "read back through the tunnel: %d acknowledged files, %d missing, %d wrong, %d unreadable\n",
		r.Lost.Checked, r.Lost.Missing, r.Lost.Wrong, r.Lost.Unreadable)
	fmt.Fprintf(w, "gap: median %.3f s, max %.3f s over %d trials (of %d asked)\n", r.GapMedianMs/1000, r.GapMaxMs/1000, len(r.Trials), r.TrialsRequested)
	for _, e := range r.ErrorExamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	for _, e := range r.Lost.Examples {
		fmt.Fprintf(w, "  lost: %s\n", e)
	}
	fmt.Fprintln(w, "\ntargets (reported, not asserted):")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s  %-28s %s\n", passWord(c.Pass), c.Name, c.Detail)
	}
	fmt.Fprintf(w, "for scale: %s\n", ForScale)
	worst := 0.0
	for _, t := range r.Trials {
		worst = max(worst, t.Others.ProcessesPercent)
	}
	if worst >= othersWarnPct {
		fmt.Fprintf(w, "\nWARNING: other processes used up to %.0f %% of one CPU during a trial: elections and catch-up may be slower than on an idle machine.\n", worst)
	}
}

func gapText(t Trial) string {
	if !t.Resumed {
		return fmt.Sprintf("operations had not resumed after %.0f s", t.GapMs/1000)
	}
	return fmt.Sprintf("%.3f s (kill → first success %.3f s)", t.GapMs/1000, t.KillToResumeMs/1000)
}

func catchUpText(t Trial) string {
	if !t.CaughtUp {
		return fmt.Sprintf("restarted, NOT caught up after %.0f s", t.CatchUpSeconds)
	}
	return fmt.Sprintf("restarted, caught up to index %d in %.1f s", t.CatchUpIndex, t.CatchUpSeconds)
}

func secondsOrDash(msv float64) string {
	if msv <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", msv/1000)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
