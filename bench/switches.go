package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
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

// haproxyWatch records every change of the server HAProxy would send new
// traffic to: the master while it is up, else the backup while it is up,
// else none. HAProxy keeps no such history. Its stderr (our log file) has a
// line for every server that goes UP or DOWN but no time of day, so the
// watch tails that file every 20ms and stamps the lines as they come; the
// stats socket gives the state at the start. Polling the socket alone
// would miss a server that is up for less than a poll, which HAProxy's
// on-error mark-down makes happen.
type haproxyWatch struct {
	sock, log string
	t0        time.Time

	mu      sync.Mutex
	recs    []switchRec
	up      map[string]bool
	active  string
	offset  int64
	partial []byte
	lastErr error
}

const haproxyPoll = 20 * time.Millisecond

func (w *haproxyWatch) run(ctx context.Context) {
	t := time.NewTicker(haproxyPoll)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-ctx.Done():
			w.poll() // the lines written since the last tick
			return
		case <-t.C:
		}
	}
}

func (w *haproxyWatch) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up == nil {
		// The log so far is earlier scenarios' and the start's: skip it.
		fi, err := os.Stat(w.log)
		if err != nil {
			w.lastErr = fmt.Errorf("haproxy log: %w", err)
			return
		}
		up, err := haproxyServersUp(w.sock)
		if err != nil {
			w.lastErr = err
			return
		}
		w.up, w.offset, w.active = up, fi.Size(), activeOf(up)
		return
	}
	f, err := os.Open(w.log)
	if err != nil {
		w.lastErr = fmt.Errorf("haproxy log: %w", err)
		return
	}
	defer f.Close()
	buf, err := io.ReadAll(io.NewSectionReader(f, w.offset, 1<<30))
	if err != nil {
		w.lastErr = fmt.Errorf("haproxy log: %w", err)
		return
	}
	w.offset += int64(len(buf))
	buf = append(w.partial, buf...)
	end := bytes.LastIndexByte(buf, '\n') + 1
	w.partial = append([]byte(nil), buf[end:]...)
	at := time.Since(w.t0)
	for line := range strings.Lines(string(buf[:end])) {
		name, state, ok := serverEvent(line)
		if !ok {
			continue
		}
		w.up[name] = state
		if a := activeOf(w.up); a != w.active {
			w.recs = append(w.recs, switchRec{At: at, From: w.active, To: a, Why: strings.TrimSpace(line)})
			w.active = a
		}
	}
}

// serverEvent reads HAProxy's "Server bench/NAME is UP" (or DOWN) line.
func serverEvent(line string) (name string, up, ok bool) {
	_, rest, found := strings.Cut(line, "Server bench/")
	if !found {
		return "", false, false
	}
	name, rest, found = strings.Cut(rest, " is ")
	switch {
	case !found:
		return "", false, false
	case strings.HasPrefix(rest, "UP"):
		return name, true, true
	case strings.HasPrefix(rest, "DOWN"):
		return name, false, true
	}
	return "", false, false
}

func activeOf(up map[string]bool) string {
	switch {
	case up[masterName]:
		return masterName
	case up[backupName]:
		return backupName
	}
	return ""
}

func (w *haproxyWatch) switches() ([]switchRec, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up == nil {
		return nil, fmt.Errorf("HAProxy's state never read: %w", w.lastErr)
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
