package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on every
// Linux this runs on).
const clockTicks = 100

// cpuMeter splits the machine's CPU time between the load generator (this
// process), the server under test, PostgreSQL and everything else, so a
// report shows where the cores went and whether the load generator or a
// noisy neighbour was in the way.
type cpuMeter struct {
	serverPID     int // 0 when no server process is measured
	postmasterPID int // 0 when unknown
}

// cpuSnapshot is a reading of the cumulative CPU times, in clock ticks.
type cpuSnapshot struct {
	at                        time.Time
	machine, interrupts       uint64
	loadgen, server, postgres uint64
}

// cpuUse is the CPU used over an interval, in cores (1.0 = one core busy
// the whole time).
type cpuUse struct {
	// Machine is all busy time; Interrupts the part spent in hard and
	// soft interrupts, where the kernel does most loopback TCP work.
	Machine, Interrupts       float64
	Loadgen, Server, Postgres float64
}

// Other is what neither the load generator, the server, PostgreSQL nor
// interrupt handling used: other processes on the machine, and processes
// that exited during the run.
func (u cpuUse) Other() float64 {
	return max(0, u.Machine-u.Interrupts-u.Loadgen-u.Server-u.Postgres)
}

// scale returns u with every figure multiplied by f.
func (u cpuUse) scale(f float64) cpuUse {
	return cpuUse{u.Machine * f, u.Interrupts * f, u.Loadgen * f, u.Server * f, u.Postgres * f}
}

// plus returns the sum of u and v.
func (u cpuUse) plus(v cpuUse) cpuUse {
	return cpuUse{u.Machine + v.Machine, u.Interrupts + v.Interrupts,
		u.Loadgen + v.Loadgen, u.Server + v.Server, u.Postgres + v.Postgres}
}

// snapshot reads the counters now. Unreadable counters read as zero: the
// meter is a diagnostic and never fails a run.
func (m cpuMeter) snapshot() cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), loadgen: processTicks(os.Getpid())}
	s.machine, s.interrupts = machineTicks()
	if m.serverPID != 0 {
		s.server = processTicks(m.serverPID)
	}
	if m.postmasterPID != 0 {
		s.postgres = postgresTicks(m.postmasterPID)
	}
	return s
}

// since returns the CPU used from then to now.
func (m cpuMeter) since(then cpuSnapshot) cpuUse {
	now := m.snapshot()
	ticks := now.at.Sub(then.at).Seconds() * clockTicks
	if ticks <= 0 {
		return cpuUse{}
	}
	cores := func(a, b uint64) float64 {
		if b < a {
			return 0
		}
		return float64(b-a) / ticks
	}
	return cpuUse{
		Machine:    cores(then.machine, now.machine),
		Interrupts: cores(then.interrupts, now.interrupts),
		Loadgen:    cores(then.loadgen, now.loadgen),
		Server:     cores(then.server, now.server),
		Postgres:   cores(then.postgres, now.postgres),
	}
}

// machineTicks is the busy time of all CPUs from /proc/stat, and the part
// of it spent in interrupts.
func machineTicks() (busy, interrupts uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal: all but idle and
	// iowait are busy.
	for i, f := range fields[1:9] {
		n, _ := strconv.ParseUint(f, 10, 64)
		switch i {
		case 3, 4:
		case 5, 6:
			interrupts += n
			busy += n
		default:
			busy += n
		}
	}
	return busy, interrupts
}

// procStat returns the parent pid and the user+system ticks of pid, from
// /proc/<pid>/stat.
func procStat(pid string) (ppid int, ticks uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	// After the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	if len(fields) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	return ppid, utime + stime, true
}

// processTicks is the CPU time of one process, all its threads included.
func processTicks(pid int) uint64 {
	_, ticks, _ := procStat(strconv.Itoa(pid))
	return ticks
}

// postgresTicks is the CPU time of the postmaster and all its children
// (backends, WAL writer, checkpointer, autovacuum).
func postgresTicks(postmaster int) uint64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total uint64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ticks, ok := procStat(e.Name())
		if ok && (pid == postmaster || ppid == postmaster) {
			total += ticks
		}
	}
	return total
}

// postmasterPID reads the postmaster's pid from PGDATA/postmaster.pid; 0
// when it cannot.
func postmasterPID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
