package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Markers of the RESULTS.md sections other than the first (the default
// run's), so that each mode rewrites its own section and keeps the others.
const (
	markScenarios = "<!-- bench:scenarios -->"
	markSoak      = "<!-- bench:soak -->"
	// markKept heads sections written by hand from runs of their own
	// (their commands are in them): no run rewrites them.
	markKept = "<!-- bench:kept -->"
)

var sectionMarks = []string{markScenarios, markSoak, markKept}

// merge returns RESULTS.md with this run's sections in place of the old ones.
func (r *report) merge(old []byte) []byte {
	secs := splitSections(string(old))
	var b bytes.Buffer
	if r.Main {
		r.markdown(&b)
		secs[""] = b.String()
	}
	if len(r.Scenarios) > 0 {
		b.Reset()
		r.scenarioMarkdown(&b)
		secs[markScenarios] = b.String()
	}
	if len(r.I9) > 0 {
		b.Reset()
		r.i9Markdown(&b)
		secs[markI9] = b.String()
	}
	if r.Soak != nil {
		b.Reset()
		r.soakMarkdown(&b)
		secs[markSoak] = b.String()
	}
	var out []string
	for _, k := range append([]string{""}, sectionMarks...) {
		if v := strings.TrimSpace(secs[k]); v != "" {
			out = append(out, v)
		}
	}
	return []byte(strings.Join(out, "\n\n") + "\n")
}

// splitSections cuts a results file at its markers; "" is the part before
// the first one. Each section keeps its marker line.
func splitSections(s string) map[string]string {
	secs := map[string]string{}
	key := ""
	var cur strings.Builder
	for line := range strings.Lines(s) {
		if m := strings.TrimSpace(line); slices.Contains(sectionMarks, m) {
			secs[key] = cur.String()
			key = m
			cur.Reset()
		}
		cur.WriteString(line)
	}
	secs[key] = cur.String()
	return secs
}

// scenarioNames lists the scenarios of the run in order.
func (r *report) scenarioNames() []string {
	var names []string
	for _, x := range r.Scenarios {
		if !slices.Contains(names, x.Scenario) {
			names = append(names, x.Scenario)
		}
	}
	return names
}

func (r *report) findScenario(name string, kind proxyKind) *scResult {
	for _, x := range r.Scenarios {
		if x.Scenario == name && x.Proxy == kind {
			return x
		}
	}
	return nil
}

// scenarioTable is one block of rows per scenario, tandem beside HAProxy.
func (r *report) scenarioTable(w io.Writer) {
	fmt.Fprintln(w, "| scenario | tandem | HAProxy |")
	fmt.Fprintln(w, "|---|--:|--:|")
	for _, name := range r.scenarioNames() {
		t, h := r.findScenario(name, kindTandem), r.findScenario(name, kindHAProxy)
		if t == nil || h == nil {
			continue
		}
		sc := scenarioDef(name, r.FO)
		fmt.Fprintf(w, "| **%s** (`%s`, %v) | | |\n", sc.Title, name, sc.Length)
		both := func(label string, f func(x *scResult) string) { row(w, label, f(t), f(h)) }
		both("requests", func(x *scResult) string { return fmt.Sprint(x.Total) })
		both("failed requests", func(x *scResult) string { return failedCell(x.foResult) })
		both("switches (the proxy's own record)", switchesCell)
		both("fault → switch (the proxy's record)", func(x *scResult) string { return fmtDur(x.SwitchAt) })
		both("fault → first answer by backup", func(x *scResult) string { return fmtDur(x.Failover) })
		if name == scDown {
			both("backup back → first answer", func(x *scResult) string { return fmtDur(x.Recovery) })
			both("failed answers with Retry-After", func(x *scResult) string { return fmt.Sprint(x.RetryAfter) })
		}
		both("master back → master active for good (record)", func(x *scResult) string { return fmtDur(x.FailbackAt) })
		both("master back → first answer by master", func(x *scResult) string { return fmtDur(x.Failback) })
		both(fmt.Sprintf("answers slower than %v", slowAfter), func(x *scResult) string { return fmt.Sprint(x.Slow) })
		both("max latency of an answer", func(x *scResult) string { return fmtLat(x.MaxLat) })
	}
}

func switchesCell(x *scResult) string {
	s := fmt.Sprint(len(x.Switches))
	if x.Allowed >= 0 {
		verdict := "ok"
		if len(x.Switches) > x.Allowed {
			verdict = "MORE than"
		}
		s += fmt.Sprintf(" (%s: policy allows %d)", verdict, x.Allowed)
	}
	return s
}

func (r *report) scenarioMarkdown(w io.Writer) {
	fmt.Fprintln(w, markScenarios)
	fmt.Fprintf(w, "# Fault scenarios: tandem vs HAProxy\n\n")
	r.context(w)
	fmt.Fprintf(w, "Load: %d keep-alive clients sending GET /hello back to back through the proxy, client timeout %v; "+
		"the fault at %v from the start of the load, the outage %v. Fresh backends, proxy (and namespaces) per row.\n\n",
		r.FO.Clients, r.FO.Timeout, r.FO.FaultAt, r.FO.Outage)
	r.scenarioTable(w)
	fmt.Fprintf(w, "\n## What each scenario does\n\n")
	for _, name := range r.scenarioNames() {
		sc := scenarioDef(name, r.FO)
		fmt.Fprintf(w, "- **%s** (`%s`): %s\n", sc.Title, name, sc.Setup)
	}
	fmt.Fprintf(w, "\n## Switches as each proxy recorded them (from the start of the load)\n\n")
	fmt.Fprintln(w, "| scenario | proxy | fault, master back | switches |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, x := range r.Scenarios {
		var parts []string
		for _, s := range x.Switches {
			parts = append(parts, fmt.Sprintf("%s %s→%s", fmtAt(s.At), shortName(s.From), shortName(s.To)))
		}
		list := strings.Join(parts, ", ")
		if list == "" {
			list = "none"
		}
		if x.Note != "" {
			list += " (" + x.Note + ")"
		}
		row(w, x.Scenario, string(x.Proxy), fmtAt(x.FaultAt)+", "+fmtAt(x.Master), list)
	}
	fmt.Fprintf(w, "\nWho answered, one character per %v (M master, B backup, + both, x a failure, . nothing):\n\n```\n", timelineStep)
	for _, x := range r.Scenarios {
		fmt.Fprintf(w, "%-9s %-7s %s\n", x.Scenario, x.Proxy, x.Timeline)
	}
	fmt.Fprintln(w, "```")
	fmt.Fprint(w, scenarioMethod)
}

// fmtAt prints a time on the load's clock; negative: never.
func fmtAt(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func shortName(s string) string {
	switch s {
	case masterName:
		return "M"
	case backupName:
		return "B"
	case "":
		return "none"
	}
	return s
}

const scenarioMethod = `
## Reading the figures

- Failed: a non-2xx answer, a transport error or the client's timeout. A request whose reused
  connection closed before any byte of an answer is sent once more (as browsers do), not failed.
- Switches: tandem's come from ` + "`tandem history bench -o json`" + ` (its admin API). HAProxy keeps no
  history: the bench reads the servers' state from its stats socket (` + "`show servers state`" + `) at the
  start, then tails HAProxy's stderr, which has a line per server going UP or DOWN, every 20ms, and
  counts the changes of the server HAProxy would send new traffic to (the master while up, else the
  backup while up, else none); ` + "`show stat`" + `'s chkdown, the master's UP→DOWN count, is given beside it.
- "master back" is the master's restart, SIGCONT, end of the slowness, of the 500s, of the flapping
  or of the cut. "master active for good": the proxy's last switch, to the master, measured from
  then (0: it was already active again then). "first answer by master" counts only requests sent
  after the master was back.
- tandem and HAProxy get the same checks (GET /status expecting "version", interval 1s, 250ms while
  changing and while down, timeout 500ms, rise 2, fall 2), 3 tries, connect timeout 2s, and fail
  back at once, except where a scenario says otherwise.
- No tc netem on this kernel: latency and 5xx on the master only come from the bench's interposer
  (an HTTP proxy in the bench process, in front of the master in both runs); packet loss from nft
  drop rules inside network namespaces of the bench's own (names tnd-ID-..., removed at exit).
`
