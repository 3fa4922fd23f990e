package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/PID/stat's CPU times (USER_HZ: 100 on every
// Linux the bench runs on; the kernel's own HZ does not change it).
const userHZ = 100

// treeCPU is the user and system CPU time pid and every process below it
// used so far: a proxy's own cost, its workers' included (nginx's
// processes are children of its master).
func treeCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// follow are counted from its closing parenthesis.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// Fields 14 and 15 of stat(5), utime and stime: 12 and 13 after the name.
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	total := time.Duration(ticks) * time.Second / userHZ
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, c := range strings.Fields(string(b)) {
			cpid, err := strconv.Atoi(c)
			if err != nil {
				continue
			}
			if d, err := treeCPU(cpid); err == nil {
				total += d
			}
		}
	}
	return total, nil
}

// cpuMeter measures the CPU a process tree spends per request over one
// measurement; the zero meter (direct: no proxy) measures nothing.
type cpuMeter struct{ pid int }

// start samples the tree; the func it returns takes the requests served
// since and gives the CPU per request (0 when it cannot tell).
func (m cpuMeter) start() func(requests int) time.Duration {
	if m.pid == 0 {
		return func(int) time.Duration { return 0 }
	}
	before, err := treeCPU(m.pid)
	return func(requests int) time.Duration {
		after, err2 := treeCPU(m.pid)
		if err != nil || err2 != nil || requests <= 0 {
			return 0
		}
		return (after - before) / time.Duration(requests)
	}
}
