package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestHoldWindow(t *testing.T) {
	ms := time.Millisecond
	samples := []kubeSample{
		{start: 0, end: 2 * ms, status: 200},           // ended before the fault
		{start: 9 * ms, end: 40 * ms, status: 200},     // held across the switch
		{start: 12 * ms, end: 14 * ms, status: 200},    // in the window, fast
		{start: 15 * ms, end: 30 * ms, status: 502},    // failed: counted elsewhere
		{start: 35 * ms, end: 90 * ms, status: 200},    // started after the switch
		{start: 11 * ms, end: 25 * ms, err: "refused"}, // failed
	}
	h := holdWindow(samples, 10*ms, 20*ms, 5*ms)
	if h.N != 2 || h.Held != 1 || h.HeldMax != 31*ms || h.Max != 31*ms {
		t.Errorf("holdWindow = %+v, want 2 in the window, 1 held of 31ms", h)
	}
}

// The single-gateway figures are quoted from RESULTS.md as it stands.
func TestQuoteSingle(t *testing.T) {
	b, err := os.ReadFile("RESULTS.md")
	if err != nil {
		t.Fatalf("bench/RESULTS.md, which the repository holds, cannot be read: %v", err)
	}
	f := quoteSingle(string(b))
	for name, v := range map[string]string{"commit": f.Commit, "scenario commit": f.ScenCommit, "kill first": f.KillFirst,
		"kill failed": f.KillFailed, "kill max": f.KillMax, "1a switch": f.ScenSwitch, "1a max": f.ScenMax, "p99": f.P99} {
		if v == "?" || v == "" || strings.Contains(v, "|") {
			t.Errorf("%s: %q", name, v)
		}
	}
}

func TestKubeSectionKept(t *testing.T) {
	old := "# main\n\n" + markScenarios + "\n# scen\n\n" + markKube + "\n# kube\n"
	got := string((&report{Scenarios: []*scResult{}}).merge([]byte(old)))
	if !strings.Contains(got, markKube+"\n# kube") {
		t.Errorf("another mode's rewrite lost the -kube section:\n%s", got)
	}
}
