package main

import (
	"strings"
	"testing"
	"time"
)

func TestMergeKeepsOtherSections(t *testing.T) {
	old := "# main\nthroughput table\n\n" + markScenarios + "\n# old scenarios\n\n" + markSoak + "\n# old soak\n"
	tests := []struct {
		name      string
		rep       *report
		keep      []string
		drop      []string
		wantOrder []string
	}{
		{name: "soak replaces only the soak", rep: &report{Soak: &soakResult{Opts: soakOpts{Length: time.Minute}}},
			keep: []string{"throughput table", "# old scenarios", "# Soak:"}, drop: []string{"# old soak"},
			wantOrder: []string{"# main", markScenarios, markSoak}},
		{name: "scenarios replace only the scenarios", rep: &report{Scenarios: []*scResult{{Scenario: scKill, Proxy: kindTandem, foResult: &foResult{}}}},
			keep: []string{"throughput table", "# Fault scenarios", "# old soak"}, drop: []string{"# old scenarios"},
			wantOrder: []string{"# main", markScenarios, markSoak}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.rep.merge([]byte(old)))
			for _, s := range tt.keep {
				if !strings.Contains(got, s) {
					t.Errorf("lost %q:\n%s", s, got)
				}
			}
			for _, s := range tt.drop {
				if strings.Contains(got, s) {
					t.Errorf("kept %q:\n%s", s, got)
				}
			}
			last := -1
			for _, s := range tt.wantOrder {
				i := strings.Index(got, s)
				if i <= last {
					t.Errorf("%q out of order:\n%s", s, got)
				}
				last = i
			}
		})
	}
}

func TestMergeWithoutMarkers(t *testing.T) {
	// The file as the default run writes it: everything is the first section.
	old := "# tandem vs HAProxy\n| table |\n"
	got := string((&report{Soak: &soakResult{}}).merge([]byte(old)))
	if !strings.HasPrefix(got, old) || !strings.Contains(got, markSoak) {
		t.Fatalf("got:\n%s", got)
	}
}

func TestFlapAllowed(t *testing.T) {
	o := foOpts{FaultAt: 2 * time.Second}
	tests := []struct {
		flapFor time.Duration
		want    int
	}{
		// Phases of 2.5s, shorter than failback after 5s: away once, back once.
		{20 * time.Second, 2},
		{10 * time.Second, 2},
		{5 * time.Second, 2},
	}
	for _, tt := range tests {
		sc := &scenario{FlapFor: tt.flapFor, Length: o.FaultAt + tt.flapFor + flapFailback + failbackGrace}
		if got := flapAllowed(&stage{sc: sc, o: o}); got != tt.want {
			t.Errorf("flapFor %v: allowed %d, want %d", tt.flapFor, got, tt.want)
		}
	}
}

func TestSwitchTimes(t *testing.T) {
	s := time.Second
	tests := []struct {
		name         string
		recs         []switchRec
		fault, back  time.Duration
		wantSw, want time.Duration
	}{
		{"away and back", []switchRec{{At: 3 * s, From: masterName, To: backupName}, {At: 9 * s, From: backupName, To: masterName}},
			2 * s, 8 * s, s, s},
		{"never back", []switchRec{{At: 3 * s, From: masterName, To: backupName}}, 2 * s, 8 * s, s, -1},
		{"back before the master's return", []switchRec{{At: 3 * s, To: backupName}, {At: 4 * s, To: masterName}}, 2 * s, 8 * s, s, 0},
		{"no switch", nil, 2 * s, 8 * s, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, fb := switchTimes(tt.recs, tt.fault, tt.back)
			if sw != tt.wantSw || fb != tt.want {
				t.Errorf("got %v, %v; want %v, %v", sw, fb, tt.wantSw, tt.want)
			}
		})
	}
}

func TestHAProxyServersUp(t *testing.T) {
	// The shape of HAProxy 2.6's answer (columns cut after the ones read).
	page := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n" +
		"3 bench 1 bench-master 127.0.0.1 0 0 1\n3 bench 2 bench-backup 127.0.0.1 2 0 1\n\n"
	up, err := parseServersState(page)
	if err != nil {
		t.Fatal(err)
	}
	if up[masterName] || !up[backupName] {
		t.Fatalf("got %v", up)
	}
	if _, err := parseServersState("Unknown command\n"); err == nil {
		t.Fatal("no error for an answer without the header")
	}
}

func TestServerEvent(t *testing.T) {
	tests := []struct {
		line   string
		name   string
		up, ok bool
	}{
		{"[WARNING]  (24165) : Server bench/bench-master is DOWN, reason: Layer7 timeout, check duration: 874ms.", masterName, false, true},
		{"[WARNING]  (24165) : Server bench/bench-backup is UP, reason: Layer7 check passed, code: 200.", backupName, true, true},
		{"[ALERT]    (24165) : backend 'bench' has no server available!", "", false, false},
		{"[NOTICE]   (24165) : haproxy version is 2.6.12", "", false, false},
	}
	for _, tt := range tests {
		name, up, ok := serverEvent(tt.line)
		if name != tt.name || up != tt.up || ok != tt.ok {
			t.Errorf("%q: got %q %v %v", tt.line, name, up, ok)
		}
	}
}
