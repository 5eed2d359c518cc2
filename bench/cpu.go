package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on every
// Linux this runs on).
const clockTicks = 100

// pids are the processes whose CPU use a phase reports.
type pids struct {
	agent int // the agent; the bench's own pid when it runs in-process
	s3    int // the S3 server; 0 when it runs inside the bench
	db    int // the PostgreSQL postmaster; 0 with SQLite (inside the agent)
}

// cpuUse is the CPU a phase used, in cores (CPU seconds per second).
type cpuUse struct {
	agent, bench, s3 float64
	db               float64 // PostgreSQL: the postmaster and its backends
	// other is what the rest of the machine used: another job on a shared
	// machine makes the figures of a run lower than they should be.
	other float64
	// steal is the time the hypervisor gave the CPUs to other guests.
	steal float64
	// wall is the length of the phase: agent*wall is the agent's CPU time.
	wall time.Duration
}

// cpuMeter measures cpuUse from its creation to stop.
type cpuMeter struct {
	p                pids
	start            time.Time
	agent, bench, s3 time.Duration
	db               time.Duration
	busy, steal      time.Duration
	self             bool // the agent runs in the bench process
}

func startCPU(p pids) *cpuMeter {
	m := &cpuMeter{p: p, start: time.Now(), self: p.agent == os.Getpid()}
	m.agent, m.bench, m.s3, m.db = procCPU(p.agent), selfCPU(), procCPU(p.s3), treeCPU(p.db)
	m.busy, m.steal = machineCPU()
	return m
}

func (m *cpuMeter) stop() cpuUse {
	elapsed := time.Since(m.start)
	wall := elapsed.Seconds()
	busy, steal := machineCPU()
	u := cpuUse{
		agent: (procCPU(m.p.agent) - m.agent).Seconds() / wall,
		bench: (selfCPU() - m.bench).Seconds() / wall,
		s3:    (procCPU(m.p.s3) - m.s3).Seconds() / wall,
		db:    (treeCPU(m.p.db) - m.db).Seconds() / wall,
		steal: (steal - m.steal).Seconds() / wall,
		wall:  elapsed,
	}
	if m.self {
		u.bench = 0 // counted as the agent's
	}
	u.other = max((busy-m.busy).Seconds()/wall-u.agent-u.bench-u.s3-u.db, 0)
	return u
}

// procCPU returns the user+system CPU time a process has used, 0 when it
// cannot be read (pid 0 or not Linux).
func procCPU(pid int) time.Duration {
	st, ok := readStat(pid)
	if !ok {
		return 0
	}
	return st.utime + st.stime
}

// treeCPU returns the CPU time of a server that forks a process per
// connection (PostgreSQL): the parent's, its children's still running and
// that of the children it has reaped (cutime, cstime), so that a backend
// ending between two readings is neither lost nor counted twice.
func treeCPU(parent int) time.Duration {
	st, ok := readStat(parent)
	if !ok {
		return 0
	}
	total := st.utime + st.stime + st.cutime + st.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == parent {
			continue
		}
		if c, ok := readStat(pid); ok && c.ppid == parent {
			total += c.utime + c.stime + c.cutime + c.cstime
		}
	}
	return total
}

// procStat is what the bench reads of /proc/<pid>/stat.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime time.Duration
}

func readStat(pid int) (procStat, bool) {
	var st procStat
	if pid <= 0 {
		return st, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, false
	}
	// The command name may hold spaces: fields count from after ")".
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return st, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return st, false
	}
	tick := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / clockTicks
	}
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, st.stime, st.cutime, st.cstime = tick(11), tick(12), tick(13), tick(14)
	return st, true
}

// selfCPU is the CPU time the bench process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns the CPU time all CPUs spent busy (user, nice, system,
// irq, softirq) and stolen by the hypervisor, from /proc/stat.
func machineCPU() (busy, steal time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	tick := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / clockTicks
	}
	// user nice system idle iowait irq softirq steal
	return tick(1) + tick(2) + tick(3) + tick(6) + tick(7), tick(8)
}

// loadAvg is the 1-minute load average, -1 when unknown.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
