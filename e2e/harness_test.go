// Package e2e tests tandem end to end: the real binary, real backend
// processes killed with SIGKILL or frozen with SIGSTOP, real sockets on
// loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/admin"
)

// bin is the tandem binary built once for every test.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tandem")
	args := []string{"build", "-o", bin}
	if os.Getenv("E2E_RACE") != "" {
		// Build the gateway with the race detector: its log is in the
		// failure report of any test it broke.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/tandem")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tandem:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address nobody listens on right now. Ports
// come from below the kernel's ephemeral range: a killed server restarted
// on its port must not find it taken by some client's outgoing connection.
func freePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port found in 20000-32000")
	return ""
}

// proc is a child process whose output is kept for failure reports.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race", name)
		}
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// waitOutput waits up to limit for the process's output to hold want: a
// line logged by another goroutine than the one that answered (a state
// change, a switch) may come a little after the answer the test saw.
func (p *proc) waitOutput(want string, limit time.Duration) bool {
	for end := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(p.out.String(), want) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
		return -1
	}
}

// app is a demo backend instance.
type app struct {
	*proc
	addr string
}

// startApp starts a demo app named name on addr (a free port if "").
func startApp(t testing.TB, name, addr string) *app {
	t.Helper()
	if addr == "" {
		addr = freePort(t)
	}
	a := &app{proc: start(t, "app "+name, "demoapp", "--name", name, "--addr", addr), addr: addr}
	waitHTTP(t, "http://"+addr+"/status", 200)
	return a
}

// waitHTTP polls url until it answers want (bounded).
func waitHTTP(t testing.TB, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 10s", url, want)
}

// gw is a running gateway process.
type gw struct {
	*proc
	addr  string // first listener
	admin string
	path  string
}

// gwConfig is the usual test config: one failover group "app" over the
// given apps, the first one master; callers append the group's other keys.
func gwConfig(apps ...*app) string {
	var b strings.Builder
	b.WriteString("listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: debug}\ngroups:\n  - name: app\n    servers:\n")
	for i, a := range apps {
		fmt.Fprintf(&b, "      - {name: %s, address: %q, backup: %t}\n", strings.TrimPrefix(a.name, "app "), a.addr, i > 0)
	}
	return b.String()
}

// engine is the gateway's engine the tests run with: TANDEM_E2E_ENGINE
// (net/http: net/http's server and Transport serve; scripts/test runs the
// core tests a second time so), else the config's default, tandem's own.
var engine = os.Getenv("TANDEM_E2E_ENGINE")

// withEngine returns cfg with the engine of the run, unless it names one.
func withEngine(cfg string) string {
	if engine == "" || strings.HasPrefix(cfg, "engine:") || strings.Contains(cfg, "\nengine:") {
		return cfg
	}
	return "engine: " + engine + "\n" + cfg
}

// startGateway writes cfg (with LISTEN and ADMIN placeholders filled, and
// the run's engine) and starts the gateway, waiting until it serves.
func startGateway(t testing.TB, cfg string, files ...string) *gw {
	t.Helper()
	g := &gw{addr: freePort(t), admin: freePort(t)}
	cfg = strings.ReplaceAll(cfg, "LISTEN", g.addr)
	cfg = strings.ReplaceAll(cfg, "ADMIN", g.admin)
	cfg = withEngine(cfg)
	dir := t.TempDir()
	g.path = filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(g.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc = start(t, "gateway", "gateway", "-c", g.path)
	if !untilTrue(10*time.Second, func() bool {
		select {
		case <-g.done:
			t.Fatalf("gateway exited at start:\n%s", g.out.String())
		default:
		}
		resp, err := http.Get("http://" + g.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatal("gateway admin API did not come up within 10s")
	}
	// The admin API listens before the public listeners: wait for them too.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", g.addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway does not listen on %s", g.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its listeners say which engine serves them (logged as each is bound).
	if engine != "" && !untilTrue(2*time.Second, func() bool {
		out := g.out.String()
		return strings.Contains(out, "engine="+engine) || strings.Contains(out, `"engine":"`+engine+`"`)
	}) {
		t.Fatalf("the gateway does not say it serves with engine %s:\n%s", engine, g.out.String())
	}
	return g
}

// waitActive waits until the gateway's group app has server active: a master whose first check failed (a slow start on a
// loaded machine) starts the gateway on the failover, and the failback
// that follows would close the websockets a test opens meanwhile.
func (g *gw) waitActive(t testing.TB, server string, limit time.Duration) {
	t.Helper()
	var last string
	if !untilTrue(limit, func() bool {
		resp, err := http.Get("http://" + g.admin + "/api/v1/state")
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		var st admin.State
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			last = err.Error()
			return false
		}
		for _, gr := range st.Groups {
			if gr.Name == "app" {
				last = gr.Active
				return gr.Active == server
			}
		}
		return false
	}) {
		t.Fatalf("the gateway's active server is %q, want %q within %v", last, server, limit)
	}
}

// cli runs a tandem CLI command against the gateway's admin API.
func (g *gw) cli(args ...string) (string, int) {
	cmd := exec.Command(bin, append(args, "--admin", "http://"+g.admin)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// result is one request of a load run.
type result struct {
	start, end time.Time
	status     int
	server     string // from the body "hello from NAME"
	err        error
	method     string
}

// load runs n clients doing req in a loop until stop is closed or limit
// passes (a bound so a hung test ends), and returns every result.
type load struct {
	mu      sync.Mutex
	results []result
	stop    chan struct{}
	wg      sync.WaitGroup
}

func runLoad(n int, limit time.Duration, do func(c *http.Client) result) *load {
	l := &load{stop: make(chan struct{})}
	end := time.Now().Add(limit)
	for range n {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for time.Now().Before(end) {
				select {
				case <-l.stop:
					return
				default:
				}
				r := do(c)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// probe starts one request every interval, each in its own goroutine, so
// that clients stuck on a frozen server do not hide what new requests see.
func (l *load) probe(interval time.Duration, do func(c *http.Client) result) {
	l.wg.Go(func() {
		c := &http.Client{Timeout: 30 * time.Second}
		t := time.NewTicker(interval)
		defer t.Stop()
		for n := 0; n < 2000; n++ {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			l.wg.Go(func() {
				r := do(c)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			})
		}
	})
}

func (l *load) finish() []result {
	close(l.stop)
	l.wg.Wait()
	return l.results
}

// get does one GET of url and names the server from the body.
func get(c *http.Client, url string) result {
	r := result{start: time.Now(), method: "GET"}
	resp, err := c.Get(url)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end, r.status, r.err = time.Now(), resp.StatusCode, err
	if f := strings.Fields(string(body)); len(f) >= 3 && f[0] == "hello" {
		r.server = f[2]
	}
	return r
}

// failures returns the results that are not 2xx.
func failures(rs []result) []result {
	var out []result
	for _, r := range rs {
		if r.err != nil || r.status/100 != 2 {
			out = append(out, r)
		}
	}
	return out
}

// firstFrom returns when the first request that started after t was
// answered by server, or zero.
func firstFrom(rs []result, server string, t time.Time) time.Time {
	var first time.Time
	for _, r := range rs {
		if r.server == server && r.start.After(t) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

// lastFrom returns when the last request answered by server started.
func lastFrom(rs []result, server string) time.Time {
	var last time.Time
	for _, r := range rs {
		if r.server == server && r.start.After(last) {
			last = r.start
		}
	}
	return last
}

func describeFailures(rs []result) string {
	var b strings.Builder
	for i, r := range rs {
		if i == 10 {
			fmt.Fprintf(&b, "... and %d more\n", len(rs)-10)
			break
		}
		fmt.Fprintf(&b, "%s %s status=%d err=%v after %v\n", r.start.Format("15:04:05.000"), r.method, r.status, r.err, r.end.Sub(r.start))
	}
	return b.String()
}

// untilTrue polls cond until it holds or d passes.
func untilTrue(d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writeConfig replaces the gateway's config file (placeholders filled) for
// a reload.
func writeConfig(t testing.TB, g *gw, cfg string) {
	t.Helper()
	cfg = withEngine(strings.ReplaceAll(strings.ReplaceAll(cfg, "LISTEN", g.addr), "ADMIN", g.admin))
	if err := os.WriteFile(g.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}
