package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestTreeCPU: a process's CPU time includes its children's while they
// run (nginx's workers below their master); a process that only waits
// spends next to none; the meter divides by the requests.
func TestTreeCPU(t *testing.T) {
	// The parent waits; below it (timeout, then its child) a shell spins
	// for 600 ms and ends.
	cmd := exec.Command("sh", "-c", `timeout 0.6 sh -c 'while :; do :; done' & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(100 * time.Millisecond)
	m := cpuMeter{pid: cmd.Process.Pid}
	perReq := m.start()
	time.Sleep(300 * time.Millisecond)
	spent := perReq(1)
	if spent < 100*time.Millisecond {
		t.Errorf("the tree spent %v in 300ms while its child spun: want the child's CPU counted", spent)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := treeCPU(os.Getpid()); err != nil {
		t.Errorf("the test's own CPU: %v", err)
	}
	if d := (cpuMeter{}).start()(100); d != 0 {
		t.Errorf("the zero meter (direct) measured %v", d)
	}
}

// TestPairedRatio: the ratio column takes the median of each run's own
// ratio, so a slow phase that hit both runs of a pair does not move it, as
// it moves the ratio of the two medians.
func TestPairedRatio(t *testing.T) {
	rps := func(v ...float64) []tputRun {
		var rs []tputRun
		for _, x := range v {
			rs = append(rs, tputRun{RPS: x})
		}
		return rs
	}
	// tandem 10% ahead of HAProxy in each pair; run 4 met a slow phase
	// with tandem's half only: the medians' ratio would say 0.55.
	a := rps(22000, 11000, 11000, 11000, 33000)
	b := rps(20000, 10000, 10000, 30000, 30000)
	if got := pairedRatio(a, b, func(x tputRun) float64 { return x.RPS }); got < 1.09 || got > 1.11 {
		t.Errorf("paired ratio %.3f, want 1.10", got)
	}
	if got := pairedRatio(a, rps(0, 0), func(x tputRun) float64 { return x.RPS }); got != 0 {
		t.Errorf("no run with figures gives %.2f, want 0", got)
	}
}

// TestRunOrder: every other run goes through the targets backwards, so
// none of them always runs first or right after the same neighbour.
func TestRunOrder(t *testing.T) {
	ts := []target{{name: "direct"}, {name: "tandem"}, {name: "HAProxy"}}
	names := func(run int) (s []string) {
		for _, t := range runOrder(ts, run) {
			s = append(s, t.name)
		}
		return s
	}
	if got := names(0); !slices.Equal(got, []string{"direct", "tandem", "HAProxy"}) {
		t.Errorf("run 1 order %v, want as listed", got)
	}
	if got := names(1); !slices.Equal(got, []string{"HAProxy", "tandem", "direct"}) {
		t.Errorf("run 2 order %v, want reversed", got)
	}
	if ts[0].name != "direct" {
		t.Errorf("runOrder changed its argument: %v", ts)
	}
}
