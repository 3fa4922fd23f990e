package main

import (
	"os"
	"os/exec"
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
