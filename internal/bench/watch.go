package bench

import (
	"time"
)

// watchTimed is watchOthers that also returns the wall time of f, which
// the callers need to turn CPU times into shares.
func watchTimed(ours func() []int, f func() error) (Others, time.Duration, error) {
	start := time.Now()
	o, err := watchOthers(ours, f)
	return o, time.Since(start), err
}

// less takes from the other processes' share the CPU time cpu, spent over
// wall by processes of the benchmark that had exited when watchOthers
// looked (an nfs-cp run, a node killed with SIGKILL): the machine's totals
// count them, the scans cannot name them.
func (o Others) less(cpu, wall time.Duration) Others {
	o.ProcessesPercent = max(0, o.ProcessesPercent-percent(cpu, wall))
	return o
}
