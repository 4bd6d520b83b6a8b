package bench

import (
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses. Fields: pid (comm)
	// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	// utime stime cutime cstime priority nice threads itrealvalue starttime …
	line := "4242 (keel (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 9 9 20 0 12 0 777 2000000 3000 18446744073709551615"
	st, err := parseProcStat(line)
	want := procStat{name: "keel (x) y", cpu: 3250 * time.Millisecond, start: 777}
	if err != nil || st != want {
		t.Errorf("parseProcStat = %+v, %v; want %+v", st, err, want)
	}
	kthread := "12 (kworker/u8:3-flush-254:0) I 2 0 0 0 -1 69238880 0 0 0 0 5 1000 0 0 20 0 1 0 30 0 0 18446744073709551615"
	if st, err := parseProcStat(kthread); err != nil || !st.kernel || st.cpu != 10050*time.Millisecond {
		t.Errorf("kernel thread: %+v, %v; want kernel, 10.05 s", st, err)
	}
	if _, err := parseProcStat("4242 (short) S 1 2"); err == nil {
		t.Error("no error for a short line")
	}
}

func TestParseCPULine(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	c, err := parseCPULine("cpu  100 5 50 800 30 5 10 2 0 0")
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := cpuTimes{tasks: 1550 * ms, busy: 1720 * ms, iowait: 300 * ms, steal: 20 * ms, total: 10020 * ms}
	if c != want {
		t.Errorf("parseCPULine = %+v, want %+v", c, want)
	}
}

func TestOthersBetween(t *testing.T) {
	s := time.Second
	before := map[int]procStat{
		1: {name: "init", cpu: s, start: 1},
		2: {name: "keel", cpu: 10 * s, start: 5},
		3: {name: "go", cpu: 0, start: 6},
		4: {name: "old", cpu: 50 * s, start: 7}, // pid 4 is reused below
		9: {name: "kworker/0:1-events", cpu: 2 * s, start: 2, kernel: true},
	}
	after := map[int]procStat{
		1: {name: "init", cpu: s, start: 1},
		2: {name: "keel", cpu: 20 * s, start: 5},                               // ours: skipped
		3: {name: "go", cpu: 4 * s, start: 6},                                  // 40 %
		4: {name: "new", cpu: s, start: 99},                                    // new process: all its 1 s, 10 %
		5: {name: "vet", cpu: s / 2, start: 100},                               // started during the phase: 5 %
		9: {name: "kworker/0:1-writeback", cpu: 5 * s, start: 2, kernel: true}, // renamed, same thread: 30 %
	}
	o := othersBetween(before, after, []int{2}, 10*time.Second)
	if o.ProcessesPercent != 55 || o.KernelThreadsPercent != 30 {
		t.Errorf("processes %v %%, kernel %v %%; want 55 and 30", o.ProcessesPercent, o.KernelThreadsPercent)
	}
	want := []ProcessCPU{{3, "go", false, 40}, {9, "kworker/0:1-writeback", true, 30}, {4, "new", false, 10}, {5, "vet", false, 5}}
	if len(o.Top) != len(want) {
		t.Fatalf("top %+v, want %+v", o.Top, want)
	}
	for i := range want {
		if o.Top[i] != want[i] {
			t.Errorf("top[%d] = %+v, want %+v", i, o.Top[i], want[i])
		}
	}
}

func TestTopDirs(t *testing.T) {
	for in, want := range map[string]string{"raft/snapshots/1-2-3/state": "raft/snapshots", "state": "state", ".": "."} {
		if got := topDirs(in, 2); got != want {
			t.Errorf("topDirs(%q) = %q, want %q", in, got, want)
		}
	}
}
