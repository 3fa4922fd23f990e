package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

const healthCfg = `    health: {path: /status, expect: {status: 200, body: version}, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
`

// TestKillMaster: under 50 concurrent GET clients the master is killed with
// SIGKILL: no request fails and the failover serves within a second.
func TestKillMaster(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+"    failback: {policy: manual}\n")
	url := "http://" + g.addr + "/hello"

	l := runLoad(50, 20*time.Second, func(c *http.Client) result { return get(c, url) })
	time.Sleep(1500 * time.Millisecond)
	killAt := time.Now()
	master.kill()
	time.Sleep(2500 * time.Millisecond)
	rs := l.finish()

	if f := failures(rs); len(f) > 0 {
		t.Errorf("%d of %d requests failed across the kill:\n%s", len(f), len(rs), describeFailures(f))
	}
	if lastFrom(rs, "master").IsZero() {
		t.Fatalf("no request reached the master before the kill (%d requests)", len(rs))
	}
	first := firstFrom(rs, "failover", killAt)
	if first.IsZero() {
		t.Fatal("no request reached the failover after the kill")
	}
	if d := first.Sub(killAt); d > time.Second {
		t.Errorf("first request served by the failover %v after the kill, want within 1s", d)
	}
	t.Logf("%d requests, 0 failed; failover served %v after SIGKILL", len(rs), first.Sub(killAt).Round(time.Millisecond))
	// The history gives the cause that was seen, not only "down".
	// A killed master refuses new connections; kept-alive ones are closed
	// or reset under it: whichever the traffic saw first is the cause.
	if out, code := g.cli("history", "app"); code != 0 || !strings.Contains(out, "health: master down (passive: connection ") {
		t.Errorf("tandem history: exit %d, want the switch's cause (a refused, closed or reset connection):\n%s", code, out)
	}
}

// TestFreezeMaster: the master is frozen with SIGSTOP (hung, not dead).
func TestFreezeMaster(t *testing.T) {
	t.Run("health checks only", func(t *testing.T) {
		master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
		g := startGateway(t, gwConfig(master, backup)+healthCfg+
			"    failback: {policy: manual}\n    timeouts: {response: 30s}\n")
		url := "http://" + g.addr + "/hello"
		l := runLoad(50, 25*time.Second, func(c *http.Client) result { return get(c, url) })
		// The 50 clients all end up waiting on the frozen master: new
		// requests, started every 50ms, show when traffic moved.
		l.probe(50*time.Millisecond, func(c *http.Client) result { return get(c, url) })
		time.Sleep(time.Second)
		stopAt := time.Now()
		master.signal(syscall.SIGSTOP)
		time.Sleep(4 * time.Second)
		master.signal(syscall.SIGCONT)
		time.Sleep(500 * time.Millisecond)
		rs := l.finish()
		if f := failures(rs); len(f) > 0 {
			t.Errorf("%d of %d GETs failed across the freeze:\n%s", len(f), len(rs), describeFailures(f))
		}
		first := firstFrom(rs, "failover", stopAt)
		if first.IsZero() || first.Sub(stopAt) > 3*time.Second {
			t.Errorf("failover first served %v after SIGSTOP, want within 3s", first.Sub(stopAt))
		}
		t.Logf("%d GETs, 0 failed; failover served %v after SIGSTOP", len(rs), first.Sub(stopAt).Round(time.Millisecond))
	})

	t.Run("per-try timeout", func(t *testing.T) {
		master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
		g := startGateway(t, gwConfig(master, backup)+healthCfg+
			"    failback: {policy: manual}\n    retry: {attempts: 3, perTryTimeout: 1s}\n")
		url := "http://" + g.addr + "/hello"
		gets := runLoad(50, 25*time.Second, func(c *http.Client) result { return get(c, url) })
		posts := runLoad(5, 25*time.Second, func(c *http.Client) result {
			r := result{start: time.Now(), method: "POST"}
			resp, err := c.Post("http://"+g.addr+"/echo", "text/plain", strings.NewReader("payload"))
			r.end, r.err = time.Now(), err
			if err == nil {
				r.status = resp.StatusCode
				resp.Body.Close()
			}
			return r
		})
		// A POST with an Idempotency-Key is safe to replay, like a PUT.
		keyed := runLoad(5, 25*time.Second, func(c *http.Client) result {
			r := result{start: time.Now(), method: "POST with Idempotency-Key"}
			req, _ := http.NewRequest("POST", "http://"+g.addr+"/echo", strings.NewReader("payload"))
			req.Header.Set("Idempotency-Key", "k-"+r.start.Format("150405.000000000"))
			resp, err := c.Do(req)
			r.end, r.err = time.Now(), err
			if err == nil {
				r.status = resp.StatusCode
				resp.Body.Close()
			}
			return r
		})
		time.Sleep(time.Second)
		stopAt := time.Now()
		master.signal(syscall.SIGSTOP)
		time.Sleep(4 * time.Second)
		contAt := time.Now()
		master.signal(syscall.SIGCONT)
		rs, ps, ks := gets.finish(), posts.finish(), keyed.finish()
		if f := failures(ks); len(f) > 0 {
			t.Errorf("%d of %d POSTs with an Idempotency-Key failed:\n%s", len(f), len(ks), describeFailures(f))
		}

		if f := failures(rs); len(f) > 0 {
			t.Errorf("%d of %d GETs failed across the freeze:\n%s", len(f), len(rs), describeFailures(f))
		}
		first := firstFrom(rs, "failover", stopAt)
		if first.IsZero() || first.Sub(stopAt) > 1500*time.Millisecond {
			t.Errorf("failover first served %v after SIGSTOP, want within 1.5s", first.Sub(stopAt))
		}
		for _, r := range rs {
			if r.start.Before(contAt) && r.end.After(contAt) && r.start.Before(stopAt.Add(2*time.Second)) {
				t.Errorf("a GET started at %s waited on the frozen master until it woke", r.start.Format("15:04:05.000"))
				break
			}
			if d := r.end.Sub(r.start); d > 2500*time.Millisecond {
				t.Errorf("a GET took %v: the per-try timeout should bound it", d)
				break
			}
		}
		var timedOut int
		for _, p := range failures(ps) {
			// 504 when its per-try timeout ran out first, 502 when the
			// master was marked down while it waited (abandoned).
			if p.status != http.StatusGatewayTimeout && p.status != http.StatusBadGateway {
				t.Errorf("a POST failed with status %d err %v, want 504 or 502 (never replayed)", p.status, p.err)
			}
			timedOut++
		}
		if timedOut == 0 {
			t.Errorf("no POST in flight to the frozen master got 504 or 502 (%d POSTs)", len(ps))
		}
		t.Logf("%d GETs 0 failed, failover served %v after SIGSTOP; %d POSTs, %d got 504 or 502",
			len(rs), first.Sub(stopAt).Round(time.Millisecond), len(ps), timedOut)
	})
}

// TestFailback: the master comes back and traffic returns to it as the
// failback policy says.
func TestFailback(t *testing.T) {
	cases := []struct {
		name     string
		failback string
		min, max time.Duration // from the master's restart to its first answer
		manual   bool
	}{
		{name: "auto", failback: "{policy: auto}", min: 0, max: 3 * time.Second},
		{name: "auto after 3s", failback: "{policy: auto, after: 3s}", min: 3 * time.Second, max: 6 * time.Second},
		{name: "manual", failback: "{policy: manual}", manual: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
			g := startGateway(t, gwConfig(master, backup)+healthCfg+
				"    failback: "+tc.failback+"\n")
			url := "http://" + g.addr + "/hello"
			l := runLoad(4, 30*time.Second, func(c *http.Client) result {
				r := get(c, url)
				time.Sleep(20 * time.Millisecond)
				return r
			})
			master.kill()
			if !untilTrue(3*time.Second, func() bool { return strings.Contains(get(http.DefaultClient, url).server, "failover") }) {
				t.Fatal("traffic did not move to the failover")
			}
			restartAt := time.Now()
			startApp(t, "master", master.addr)
			if tc.manual {
				time.Sleep(4 * time.Second)
				if s := get(http.DefaultClient, url).server; s != "failover" {
					t.Fatalf("with failback manual, traffic went to %q without an operator", s)
				}
				failbackAt := time.Now()
				if out, code := g.cli("failback", "app"); code != 0 || !strings.Contains(out, "app: failed back to master (epoch ") {
					t.Fatalf("tandem failback: exit %d: %q, want it to say to which server", code, out)
				}
				untilTrue(2*time.Second, func() bool { return get(http.DefaultClient, url).server == "master" })
				time.Sleep(200 * time.Millisecond)
				rs := l.finish()
				first := firstFrom(rs, "master", failbackAt)
				if first.IsZero() || first.Sub(failbackAt) > time.Second {
					t.Errorf("master served %v after the failback command, want within 1s", first.Sub(failbackAt))
				}
				if f := failures(rs); len(f) > 0 {
					t.Errorf("%d requests failed:\n%s", len(f), describeFailures(f))
				}
				// A second failback has nothing to do and says so, with exit 0.
				if out, code := g.cli("failback", "app"); code != 0 || !strings.Contains(out, "nothing to do: master is already") {
					t.Errorf("second failback: exit %d, output %q; want exit 0 saying there was nothing to do", code, out)
				}
				return
			}
			if !untilTrue(tc.max+time.Second, func() bool { return get(http.DefaultClient, url).server == "master" }) {
				t.Fatalf("traffic did not return to the master within %v", tc.max)
			}
			time.Sleep(300 * time.Millisecond)
			rs := l.finish()
			first := firstFrom(rs, "master", restartAt)
			d := first.Sub(restartAt)
			if first.IsZero() || d < tc.min || d > tc.max {
				t.Errorf("master served again %v after its restart, want between %v and %v", d, tc.min, tc.max)
			}
			if f := failures(rs); len(f) > 0 {
				t.Errorf("%d requests failed:\n%s", len(f), describeFailures(f))
			}
			t.Logf("failback %s: master served again %v after restart", tc.failback, d.Round(time.Millisecond))
		})
	}
}
