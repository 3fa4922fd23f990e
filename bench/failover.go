package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// fault is what happens to the master during a scenario (scenario.go has
// them all); the first table of RESULTS.md shows these two.
type fault string

const (
	faultKill fault = "kill" // SIGKILL, then a new process on the same port
	faultStop fault = "stop" // SIGSTOP, then SIGCONT
)

// foOpts configures the failover scenarios.
type foOpts struct {
	Clients int
	Length  time.Duration // load runs this long; the scenario ends by itself
	FaultAt time.Duration // from the start of the load
	Outage  time.Duration // from the fault to the restart (kill) or SIGCONT (stop)
	Timeout time.Duration // bound of one request
}

// foResult is one scenario.
type foResult struct {
	Proxy  proxyKind
	Fault  fault
	Total  int
	Failed int
	Why    string        // failures by kind, e.g. "502×3 timeout×1"
	Cut    int           // still in flight when the scenario ended
	Replay int           // sent twice: the proxy closed the connection without an answer
	Slow   int           // answered, but after more than slowAfter
	MaxLat time.Duration // of answered requests
	MaxAt  time.Duration // when the slowest answer ended
	// Failover: fault to the first response served by the backup.
	// Failback: restart (or SIGCONT) to the first response served by the
	// master to a request sent after it. Negative when it never happened.
	Failover, Failback time.Duration
	// FaultAt and RestartAt are when the signals were actually sent.
	FaultAt, RestartAt time.Duration
	// Timeline has one character per timelineStep of the load, from the
	// answers that ended in it: M master only, B backup only, + both,
	// x at least one failure, . nothing answered.
	Timeline string
}

const (
	slowAfter    = time.Second
	timelineStep = 250 * time.Millisecond
)

// sleepUntil reports false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// analyze reads a scenario's outcome from its samples (sorted by end).
func analyze(samples []sample, faultAt, restartAt time.Duration) *foResult {
	r := &foResult{FaultAt: faultAt, RestartAt: restartAt, Failover: -1, Failback: -1}
	why := map[string]int{}
	for _, s := range samples {
		if s.outcome == outCut {
			r.Cut++
			continue
		}
		r.Total++
		if s.replayed {
			r.Replay++
		}
		if s.failed() {
			r.Failed++
			why[failureKind(s)]++
			continue
		}
		if s.latency() > r.MaxLat {
			r.MaxLat, r.MaxAt = s.latency(), s.end
		}
		if s.latency() > slowAfter {
			r.Slow++
		}
		if s.server == backupName && s.end >= faultAt && r.Failover < 0 {
			r.Failover = s.end - faultAt
		}
		// A request sent before the restart may have been parked on the
		// stopped master and answered at SIGCONT; only a request sent after
		// the restart shows that the proxy routes to the master again.
		if s.server == masterName && s.start >= restartAt && r.Failback < 0 {
			r.Failback = s.end - restartAt
		}
	}
	r.Why = summarize(why)
	r.Timeline = timeline(samples)
	return r
}

// timeline renders who answered when, one character per timelineStep; it
// shows at a glance a gap in service or requests parked on a server.
func timeline(samples []sample) string {
	if len(samples) == 0 {
		return ""
	}
	n := int(samples[len(samples)-1].end/timelineStep) + 1
	type bucket struct{ master, backup, failed bool }
	buckets := make([]bucket, n)
	for _, s := range samples {
		b := &buckets[s.end/timelineStep]
		switch {
		case s.failed():
			b.failed = true
		case s.server == masterName:
			b.master = true
		case s.server == backupName:
			b.backup = true
		}
	}
	var sb strings.Builder
	for _, b := range buckets {
		switch {
		case b.failed:
			sb.WriteByte('x')
		case b.master && b.backup:
			sb.WriteByte('+')
		case b.master:
			sb.WriteByte('M')
		case b.backup:
			sb.WriteByte('B')
		default:
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

func failureKind(s sample) string {
	switch s.outcome {
	case outStatus:
		return fmt.Sprint(s.status)
	case outTimeout:
		return "timeout"
	default:
		return s.why
	}
}

// summarize renders counts as "502×3 timeout×1", most frequent first.
func summarize(m map[string]int) string { return strings.Join(countList(m), " ") }

// countList is summarize's items: "502×3", most frequent first.
func countList(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return parts
}
