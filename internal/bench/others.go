package bench

import (
	"cmp"
	"os"
	"slices"
	"strconv"
	"time"
)

// Other processes on the machine compete with the benchmark for CPU and
// disk and make its figures worse than keel alone would be. They cannot be
// stopped from here, so their CPU use during each phase is reported. Kernel
// threads are counted apart: most of their work during a phase is the
// writeback and journaling of the benchmark's own writes.

// Others is the CPU time taken during a phase by everything but the
// benchmark's processes, in % of one CPU.
type Others struct {
	ProcessesPercent     float64      `json:"processes_cpu_percent"`      // other processes, short-lived ones included
	KernelThreadsPercent float64      `json:"kernel_threads_cpu_percent"` // kworkers, jbd2, …
	Top                  []ProcessCPU `json:"top,omitempty"`              // the busiest, at least 1 % each
}

// ProcessCPU is one other process's (or kernel thread's) share of a phase.
type ProcessCPU struct {
	PID        int     `json:"pid"`
	Name       string  `json:"name"`
	Kernel     bool    `json:"kernel_thread,omitempty"`
	CPUPercent float64 `json:"cpu_percent"`
}

const (
	othersTop       = 4    // processes listed by name
	othersListedPct = 1.0  // smallest share listed by name
	othersWarnPct   = 20.0 // other processes' share above which the report warns
)

// watchOthers runs f and returns what everything but this process and those
// in ours (evaluated after f, so it may name processes f starts) did
// meanwhile. Other processes' total is the machine's task time less ours
// and the kernel threads', so it counts processes too short-lived for the
// scans to see.
func watchOthers(ours func() []int, f func() error) (Others, error) {
	sysBefore, _ := readCPUTimes()
	before, start := scanProcesses(), time.Now()
	err := f()
	after, wall := scanProcesses(), time.Since(start)
	sysAfter, _ := readCPUTimes()
	skip := append(ours(), os.Getpid())
	o := othersBetween(before, after, skip, wall)
	var oursUsed time.Duration
	for _, pid := range skip {
		oursUsed += used(before, after, pid)
	}
	if tasks := sysAfter.tasks - sysBefore.tasks; tasks > 0 {
		o.ProcessesPercent = max(0, percent(tasks-oursUsed, wall)-o.KernelThreadsPercent)
	}
	return o, err
}

// othersBetween compares two scans: the processes not in skip that used CPU
// between them. ProcessesPercent is the sum of those seen in both scans or
// started in between.
func othersBetween(before, after map[int]procStat, skip []int, wall time.Duration) Others {
	var o Others
	for pid, a := range after {
		if slices.Contains(skip, pid) {
			continue
		}
		pct := percent(used(before, after, pid), wall)
		if a.kernel {
			o.KernelThreadsPercent += pct
		} else {
			o.ProcessesPercent += pct
		}
		if pct >= othersListedPct {
			o.Top = append(o.Top, ProcessCPU{PID: pid, Name: a.name, Kernel: a.kernel, CPUPercent: pct})
		}
	}
	slices.SortFunc(o.Top, func(x, y ProcessCPU) int {
		return cmp.Or(cmp.Compare(y.CPUPercent, x.CPUPercent), cmp.Compare(x.PID, y.PID))
	})
	o.Top = o.Top[:min(len(o.Top), othersTop)]
	return o
}

// used is the CPU time pid took between two scans; all of it if it started
// in between (its pid new, or reused).
func used(before, after map[int]procStat, pid int) time.Duration {
	a := after[pid]
	if b, ok := before[pid]; ok && b.start == a.start {
		return a.cpu - b.cpu
	}
	return a.cpu
}

// scanProcesses reads every process on the machine; those that vanish
// while it reads are left out.
func scanProcesses() map[int]procStat {
	out := map[int]procStat{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := parseProcStat(string(b)); err == nil {
			out[pid] = st
		}
	}
	return out
}
