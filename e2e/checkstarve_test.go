package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestStarvedChecks: the gateway's own goroutines do not run for longer
// than the check timeout while a check is in flight (issue 9 item 7: a
// reconnect storm on 2 cores starved tandem's checks of the backup). The
// model is the extreme case: the master answers its check at once and the
// gateway is frozen (SIGSTOP) before it can read the answer, for longer
// than the check timeout, three checks in a row. The answer was there in
// time, sitting unread in the gateway's socket: no check may count it as a
// timeout, and the master stays up and active.
func TestStarvedChecks(t *testing.T) {
	var pid atomic.Int64
	var freezes, frozen atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			fmt.Fprintln(w, "hello from master")
			return
		}
		p := int(pid.Load())
		if p == 0 || freezes.Add(-1) < 0 {
			fmt.Fprintln(w, `{"version": "1"}`)
			return
		}
		// The answer goes out while the gateway cannot run: it waits in
		// the gateway's socket until SIGCONT, 800ms later (timeout 500ms).
		syscall.Kill(p, syscall.SIGSTOP)
		fmt.Fprintln(w, `{"version": "1"}`)
		w.(http.Flusher).Flush()
		time.Sleep(800 * time.Millisecond)
		syscall.Kill(p, syscall.SIGCONT)
		frozen.Add(1)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g := fakeMasterGateway(t, ln.Addr().String(), "    failback: {policy: manual}\n")
	pid.Store(int64(g.cmd.Process.Pid))
	t.Cleanup(func() { syscall.Kill(g.cmd.Process.Pid, syscall.SIGCONT) })
	freezes.Store(3)
	if !untilTrue(15*time.Second, func() bool { return frozen.Load() == 3 }) {
		t.Fatalf("only %d of 3 checks froze the gateway", frozen.Load())
	}
	time.Sleep(1500 * time.Millisecond) // the check after the last freeze
	if _, to := lastSwitch(t, g); to != "master" {
		t.Errorf("active server %q after checks answered in time while the gateway was frozen, want master", to)
	}
	m := scrape(t, g)
	if n := m[`tandem_health_check_failures_total{group="app",reason="timeout",server="master"}`]; n != 0 {
		t.Errorf("%v check timeouts of the master, whose answers came at once (the gateway could not read them)", n)
	}
	for line := range strings.Lines(grepLines(g.out.String(), "server state changed")) {
		if strings.Contains(line, "server=master") && strings.Contains(line, "to=down") {
			t.Errorf("the master went down: %s", line)
		}
	}
}
