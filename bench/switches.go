package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// switchRec is one change of the active server, as the proxy itself
// records it, on the load's clock.
type switchRec struct {
	At       time.Duration
	From, To string // "" for none
	Why      string
}

// tandemSwitches reads the group's history with `tandem history -o json`
// (the operator's view) and keeps the switches made after t0.
func tandemSwitches(ctx context.Context, e *env, g *gateway, t0 time.Time) ([]switchRec, error) {
	out, err := exec.CommandContext(ctx, e.tandem, "history", "bench", "-o", "json", "--admin", g.admin).Output()
	if err != nil {
		return nil, fmt.Errorf("tandem history: %w", err)
	}
	var h []struct {
		At       time.Time `json:"at"`
		From, To string
		Reason   string
		Kind     string
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return nil, fmt.Errorf("tandem history: %w", err)
	}
	var recs []switchRec
	for _, s := range h {
		if s.At.Before(t0) {
			continue
		}
		recs = append(recs, switchRec{At: s.At.Sub(t0), From: s.From, To: s.To, Why: s.Kind + ": " + s.Reason})
	}
	// The report wants time order, whatever order the API lists them in.
	slices.SortStableFunc(recs, func(a, b switchRec) int { return cmp.Compare(a.At, b.At) })
	return recs, nil
}

// haproxyWatch polls HAProxy's stats socket and records every change of the
// server HAProxy would send new traffic to: the master while it is up, else
// the backup while it is up, else none. HAProxy keeps no such history, and
// its log lines carry no sub-second time, hence polling; checks run every
// 250ms at the fastest and a transition needs two of them, so a 50ms poll
// misses nothing.
type haproxyWatch struct {
	sock string
	t0   time.Time

	mu      sync.Mutex
	recs    []switchRec
	active  string
	started bool
	errs    int
	lastErr error
}

const haproxyPoll = 50 * time.Millisecond

func (w *haproxyWatch) run(ctx context.Context) {
	t := time.NewTicker(haproxyPoll)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *haproxyWatch) poll() {
	up, err := haproxyServersUp(w.sock)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs++
		w.lastErr = err
		return
	}
	active := ""
	switch {
	case up[masterName]:
		active = masterName
	case up[backupName]:
		active = backupName
	}
	if !w.started {
		w.started, w.active = true, active
		return
	}
	if active != w.active {
		w.recs = append(w.recs, switchRec{At: time.Since(w.t0), From: w.active, To: active, Why: "stats socket"})
		w.active = active
	}
}

func (w *haproxyWatch) switches() ([]switchRec, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return nil, fmt.Errorf("HAProxy stats socket never answered: %w", w.lastErr)
	}
	return append([]switchRec(nil), w.recs...), nil
}

// haproxyCommand sends one command to the stats socket and returns the answer.
func haproxyCommand(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "", fmt.Errorf("stats socket: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", fmt.Errorf("stats socket: %w", err)
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("stats socket: %w", err)
	}
	var sb strings.Builder
	br := bufio.NewReader(c)
	if _, err := br.WriteTo(&sb); err != nil {
		return "", fmt.Errorf("stats socket: %w", err)
	}
	return sb.String(), nil
}

// haproxyServersUp reads `show servers state bench`: which servers are
// RUNNING (srv_op_state 2) and not in maintenance.
func haproxyServersUp(sock string) (map[string]bool, error) {
	out, err := haproxyCommand(sock, "show servers state bench")
	if err != nil {
		return nil, err
	}
	return parseServersState(out)
}

// parseServersState reads the answer of `show servers state`.
func parseServersState(out string) (map[string]bool, error) {
	var cols []string
	up := map[string]bool{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# be_id"):
			cols = strings.Fields(strings.TrimPrefix(line, "# "))
		case line == "" || line[0] == '#' || cols == nil:
		default:
			f := strings.Fields(line)
			get := func(name string) string {
				for i, c := range cols {
					if c == name && i < len(f) {
						return f[i]
					}
				}
				return ""
			}
			op, _ := strconv.Atoi(get("srv_op_state"))
			admin, _ := strconv.Atoi(get("srv_admin_state"))
			up[get("srv_name")] = op == 2 && admin == 0
		}
	}
	if cols == nil {
		return nil, fmt.Errorf("stats socket: unexpected answer %q", strings.TrimSpace(out))
	}
	return up, nil
}

// haproxyDowns reads the master's chkdown from `show stat`: how many times
// HAProxy took it from UP to DOWN, a cross-check of the poll.
func haproxyDowns(sock string) (int, error) {
	out, err := haproxyCommand(sock, "show stat")
	if err != nil {
		return 0, err
	}
	var cols []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# ") {
			cols = strings.Split(strings.TrimPrefix(line, "# "), ",")
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 || f[0] != "bench" || f[1] != masterName {
			continue
		}
		for i, c := range cols {
			if c == "chkdown" && i < len(f) {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, fmt.Errorf("show stat: no chkdown for %s", masterName)
}
