package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Readings of the kernel's per-process and per-machine counters, taken
// before and after a load to attribute disk writes and CPU time.

// clockTick is USER_HZ, the unit of the CPU times in /proc; 100 on every
// Linux architecture Go supports.
const clockTick = 100

// procSample is what one process has done so far.
type procSample struct {
	writeBytes uint64        // write_bytes − cancelled_write_bytes from /proc/<pid>/io
	cpu        time.Duration // utime + stime from /proc/<pid>/stat
}

// cpuTimes are the machine's CPU times from the first line of /proc/stat,
// all CPUs together.
type cpuTimes struct {
	tasks  time.Duration // running processes and kernel threads (user, nice, system)
	busy   time.Duration // tasks, interrupts and steal
	iowait time.Duration
	steal  time.Duration // taken by the hypervisor for other machines
	total  time.Duration
}

// snapshot is a reading of every counter the benchmark uses.
type snapshot struct {
	at     time.Time
	nodes  []procSample
	self   procSample // the benchmark process (the clients)
	sys    cpuTimes
	device uint64 // bytes written to the block device; 0 if it is unknown
}

// takeSnapshot reads the counters of the processes pids, this process, the
// machine and, if dev names a block device (major, minor), that device.
func takeSnapshot(pids []int, dev blockDev) (snapshot, error) {
	s := snapshot{at: time.Now(), nodes: make([]procSample, len(pids))}
	var err error
	for i, pid := range pids {
		if s.nodes[i], err = readProc(strconv.Itoa(pid)); err != nil {
			return s, err
		}
	}
	if s.self, err = readProc("self"); err != nil {
		return s, err
	}
	if s.sys, err = readCPUTimes(); err != nil {
		return s, err
	}
	s.device = dev.writtenBytes()
	return s, nil
}

// sumWriteBytes is the nodes' disk writes together.
func (s snapshot) sumWriteBytes() uint64 {
	var sum uint64
	for _, n := range s.nodes {
		sum += n.writeBytes
	}
	return sum
}

func readProc(pid string) (procSample, error) {
	io, err := readKeyValues("/proc/" + pid + "/io")
	if err != nil {
		return procSample{}, err
	}
	cpu, err := readProcCPU("/proc/" + pid + "/stat")
	if err != nil {
		return procSample{}, err
	}
	w := io["write_bytes"]
	if c := io["cancelled_write_bytes"]; c <= w {
		w -= c
	}
	return procSample{writeBytes: w, cpu: cpu}, nil
}

// readKeyValues reads a file of "name: number" lines such as /proc/<pid>/io.
func readKeyValues(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

// readProcCPU returns utime + stime from a /proc/<pid>/stat file.
func readProcCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	st, err := parseProcStat(string(b))
	return st.cpu, err
}

// procStat is what the benchmark takes from /proc/<pid>/stat.
type procStat struct {
	name   string        // command name
	cpu    time.Duration // utime + stime
	start  uint64        // start time in ticks after boot: tells a reused pid
	kernel bool          // a kernel thread
}

const pfKthread = 0x00200000 // PF_KTHREAD in the flags field

// parseProcStat reads the text of /proc/<pid>/stat: the command name (field
// 2, in parentheses, possibly holding spaces and parentheses itself), flags
// (9), utime and stime (14, 15) and starttime (22). Fields after the name
// are counted from the last ')'.
func parseProcStat(s string) (procStat, error) {
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return procStat{}, fmt.Errorf("bench: unexpected /proc stat line %q", s)
	}
	f := strings.Fields(s[j+1:]) // f[0] is field 3, f[n-3] field n
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("bench: short /proc stat line %q", s)
	}
	var v [4]uint64
	for k, field := range []int{9, 14, 15, 22} {
		n, err := strconv.ParseUint(f[field-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("bench: unexpected /proc stat line %q", s)
		}
		v[k] = n
	}
	flags, utime, stime, start := v[0], v[1], v[2], v[3]
	return procStat{name: s[i+1 : j], cpu: ticks(utime + stime), start: start, kernel: flags&pfKthread != 0}, nil
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// readCPUTimes reads the machine's CPU times from /proc/stat.
func readCPUTimes() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuTimes{}, fmt.Errorf("bench: /proc/stat is empty")
	}
	return parseCPULine(sc.Text())
}

// parseCPULine reads "cpu user nice system idle iowait irq softirq steal …".
func parseCPULine(line string) (cpuTimes, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("bench: unexpected /proc/stat line %q", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("bench: unexpected /proc/stat line %q", line)
		}
		v[i] = n
	}
	user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	return cpuTimes{
		tasks:  ticks(user + nice + system),
		busy:   ticks(user + nice + system + irq + softirq + steal),
		iowait: ticks(iowait),
		steal:  ticks(steal),
		total:  ticks(user + nice + system + idle + iowait + irq + softirq + steal),
	}, nil
}

// blockDev is a block device by major and minor number; the zero value is
// "unknown".
type blockDev struct {
	major, minor uint32
	known        bool
}

// deviceOf finds the block device holding path's filesystem.
func deviceOf(path string) blockDev {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return blockDev{}
	}
	d := uint64(st.Dev)
	major := uint32((d>>8)&0xfff) | uint32((d>>32)&^0xfff)
	minor := uint32(d&0xff) | uint32((d>>12)&^0xff)
	if major == 0 { // overlay, tmpfs and other filesystems without a device
		return blockDev{}
	}
	return blockDev{major: major, minor: minor, known: true}
}

// writtenBytes returns the sectors written to the device, in bytes, from
// /proc/diskstats; 0 if the device is unknown.
func (d blockDev) writtenBytes() uint64 {
	if !d.known {
		return 0
	}
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != strconv.Itoa(int(d.major)) || f[1] != strconv.Itoa(int(d.minor)) {
			continue
		}
		sectors, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return 0
		}
		return sectors * 512
	}
	return 0
}
