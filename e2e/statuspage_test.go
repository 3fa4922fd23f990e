package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
)

// chromiumPath is Debian's Chromium, installed by .ci/run when absent.
const chromiumPath = "/usr/bin/chromium"

// pageHealthCfg checks every 500ms so that a killed master is down within
// about 750ms, well inside the page's 2s budget (with its 500ms polling).
const pageHealthCfg = `    health: {path: /status, expect: {status: 200, body: version}, interval: 500ms, fastInterval: 250ms, timeout: 400ms, rise: 2, fall: 2}
`

// TestStatusPage drives the admin status page in headless Chromium: it
// shows the master active, the group's mode as a property (not as a
// server name), switch times with their date and zone, no "Fail back now"
// while there is nothing to fail back to; shows the failover active within
// 2s of the master's SIGKILL, drains a server through the page's
// confirmation dialog, shows a refused action's error, offers and carries
// out a failback once the master waits for one, and saves screenshots
// (desktop and phone) as test artifacts.
func TestStatusPage(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	cfg := gwConfig(master, backup) + pageHealthCfg + "    failback: {policy: manual}\n"
	g := startGateway(t, cfg)
	b := newBrowser(t)

	b.do(10*time.Second, "load the status page", chromedp.Navigate("http://"+g.admin+"/"))
	b.until(10*time.Second, "the page shows the master active and up, live", `(() => {
		const a = document.getElementById("active-app");
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		const f = document.querySelector('[data-group="app"] [data-server="failover"]');
		return !!a && a.textContent === "master" && !!m && m.dataset.role === "active" && m.dataset.state === "up" &&
			!!f && f.dataset.role === "standby" && document.getElementById("conn").dataset.conn === "live";
	})()`)
	b.until(2*time.Second, "the mode reads as the group's mode, unlike a server's name or role", `(() => {
		const mode = document.querySelector('#group-app .g-head .mode');
		return !!mode && mode.textContent === "modefailover" && !mode.classList.contains("badge") &&
			getComputedStyle(mode).borderStyle === "dashed";
	})()`)
	b.until(2*time.Second, "no Fail back now on the preferred server, no cluster panel without coordination", `(() => {
		const fb = document.querySelector('#group-app button[data-action="failback"]');
		return !!fb && fb.hidden && document.getElementById("cluster").hidden;
	})()`)
	b.until(2*time.Second, "the timeline's times have a date and a zone", `(() => {
		const ts = [...document.querySelectorAll('#group-app .timeline .tl time')];
		return ts.length > 0 && ts.every((t) => /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+$/.test(t.textContent));
	})()`)

	master.kill()
	took := b.until(5*time.Second, "the page shows the failover active", `(() => {
		const a = document.getElementById("active-app");
		const f = document.querySelector('[data-group="app"] [data-server="failover"]');
		return !!a && a.textContent === "failover" && !!f && f.dataset.role === "active";
	})()`)
	t.Logf("the page showed the failover active %v after the master's SIGKILL", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the page showed the failover %v after the kill, want within 2s", took)
	}
	b.until(2*time.Second, "the master shown down and the switch in the timeline, with its cause", `(() => {
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		const sw = [...document.querySelectorAll('[data-group="app"] .timeline .tl')].some((li) =>
			li.querySelector(".from").textContent === "master" && li.querySelector(".to").textContent === "failover" &&
			li.querySelector(".by").textContent.includes("health: master down ("));
		return !!m && m.dataset.role === "down" && m.dataset.state === "down" && sw;
	})()`)
	b.until(2*time.Second, "still no Fail back now: the master is down", `document.querySelector('#group-app button[data-action="failback"]').hidden`)

	// An action through the page: Drain asks first, and only the
	// confirmation reaches the API.
	drain := chromedp.CSS(`[data-group="app"] [data-server="master"] button[data-action="drain"]`)
	b.do(5*time.Second, "click Drain on the master", chromedp.Click(drain, chromedp.NodeVisible))
	b.do(5*time.Second, "the confirmation dialog opens", chromedp.WaitVisible(chromedp.CSS("#confirm[open]")))
	if title := b.text("#confirm-title"); !strings.Contains(title, "Drain master") {
		t.Errorf("confirmation dialog title %q, want it to name the action", title)
	}
	if s := apiServer(t, g, "app", "master"); s.Drained {
		t.Fatal("the master was drained before the operator confirmed")
	}
	b.do(5*time.Second, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok"), chromedp.NodeVisible))
	if !untilTrue(3*time.Second, func() bool { return apiServer(t, g, "app", "master").Drained }) {
		t.Fatal("the API does not show the master drained 3s after the page's confirmation")
	}
	b.until(3*time.Second, "the page shows the master drained", `(() => {
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		return !!m && m.dataset.role === "drained" &&
			!!m.querySelector('button[data-action="undrain"]:not([hidden])') && !!m.querySelector('button[data-action="drain"][hidden]');
	})()`)
	if !strings.Contains(g.out.String(), "status page from") {
		t.Error("the gateway log does not say the drain came from the status page")
	}

	// A refused action: the page shows the API's error.
	writeConfig(t, g, cfg+"    mode: sideways\n")
	b.do(5*time.Second, "click Reload config", chromedp.Click(chromedp.CSS(`#reload`), chromedp.NodeVisible))
	b.do(5*time.Second, "the confirmation dialog opens", chromedp.WaitVisible(chromedp.CSS("#confirm[open]")))
	b.do(5*time.Second, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok"), chromedp.NodeVisible))
	b.until(3*time.Second, "the page shows the refusal", `(() => {
		const m = document.getElementById("message");
		return !m.hidden && m.dataset.kind === "error" && m.textContent.includes("refused (422)");
	})()`)
	if want := apiRefusal(t, g, "/api/v1/reload"); !strings.Contains(b.text("#message-text"), want) {
		t.Errorf("the page shows %q, want the API's error %q", b.text("#message-text"), want)
	}
	writeConfig(t, g, cfg)

	dir := artifactDir(t)
	b.screenshot(filepath.Join(dir, "status-page.png"))

	// The master comes back and is put back in service: with failback
	// manual it waits, and the page offers the failback, which works.
	startApp(t, "master", master.addr)
	if resp, err := http.Post("http://"+g.admin+"/api/v1/groups/app/servers/master/undrain", "", nil); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	b.until(5*time.Second, "Fail back now offered while the master waits", `(() => {
		const fb = document.querySelector('#group-app button[data-action="failback"]');
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		return !!fb && !fb.hidden && fb.classList.contains("primary") && m.dataset.role === "standby";
	})()`)
	b.do(5*time.Second, "click Fail back now", chromedp.Click(chromedp.CSS(`#group-app button[data-action="failback"]`), chromedp.NodeVisible))
	b.do(5*time.Second, "the confirmation dialog opens", chromedp.WaitVisible(chromedp.CSS("#confirm[open]")))
	b.do(5*time.Second, "confirm", chromedp.Click(chromedp.CSS("#confirm-ok"), chromedp.NodeVisible))
	b.until(3*time.Second, "the master active again, Fail back now gone", `(() => {
		const a = document.getElementById("active-app");
		return a.textContent === "master" && document.querySelector('#group-app button[data-action="failback"]').hidden;
	})()`)

	b.do(5*time.Second, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.until(3*time.Second, "the page fits a phone's width", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.screenshot(filepath.Join(dir, "status-page-phone.png"))
	b.checkConsole()
}

// TestStatusPageHeld: a master whose checks pass and whose answers are
// broken is ejected by its traffic and held down; the page shows it down
// with its passing check and says until when it is held and why, as the
// admin API has it, and says nothing of a hold on the failover; tandem
// status says it too.
func TestStatusPageHeld(t *testing.T) {
	g := fakeMasterGateway(t, brokenServer(t), "    passive: {maxFails: 1, window: 10s, baseEjectionTime: 60s}\n")
	b := newBrowser(t)
	b.do(10*time.Second, "load the status page", chromedp.Navigate("http://"+g.admin+"/"))
	b.until(5*time.Second, "the page shows the master active, not held", `(() => {
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		return !!m && m.dataset.role === "active" && m.dataset.held === "false" && m.querySelector(".held").hidden;
	})()`)

	// A request the master answers with a broken head ejects it; the
	// request is replayed on the failover.
	c := &http.Client{Timeout: 2 * time.Second}
	var held stateServer
	if !untilTrue(3*time.Second, func() bool {
		if r := get(c, "http://"+g.addr+"/hello"); r.err != nil || r.status != http.StatusOK {
			t.Errorf("GET through the gateway: %d %v, want 200 from the failover", r.status, r.err)
		}
		held = apiServer(t, g, "app", "master")
		return held.HeldUntil != nil
	}) {
		t.Fatalf("the admin API does not show the master held after its broken answers: %+v", held)
	}
	if !strings.Contains(held.HeldReason, "held down") {
		t.Fatalf("the admin API's heldReason %q does not say why the master is held", held.HeldReason)
	}
	want := "held down until " + held.HeldUntil.Local().Format("15:04:05") + ": " + held.HeldReason
	took := b.until(3*time.Second, "the page shows the master down, its check passing, held until "+held.HeldUntil.Local().Format("15:04:05"), `(() => {
		const m = document.querySelector('[data-group="app"] [data-server="master"]');
		const f = document.querySelector('[data-group="app"] [data-server="failover"]');
		const h = m && m.querySelector(".check .held");
		return m.dataset.role === "down" && m.dataset.held === "true" && m.querySelector(".check .res").classList.contains("ok") &&
			!!h && !h.hidden && h.offsetParent !== null && h.textContent === `+jsString(want)+` &&
			f.dataset.role === "active" && f.dataset.held === "false" && f.querySelector(".check .held").hidden;
	})()`)
	t.Logf("the page showed %q %v after the admin API", want, took.Round(time.Millisecond))
	// tandem status says it too, under the same clock.
	for _, o := range []string{"table", "wide"} {
		out, code := g.cli("status", "-o", o)
		if line := "app: master held down until " + held.HeldUntil.Local().Format("15:04:05") + " (in "; code != 0 || !strings.Contains(out, line) || !strings.Contains(out, "): "+held.HeldReason+"\n") || !strings.Contains(out, "down,held") {
			t.Errorf("tandem status -o %s (exit %d) does not say the master is held down until when and why:\n%s", o, code, out)
		}
	}
	b.screenshot(filepath.Join(artifactDir(t), "status-page-held.png"))
	b.do(5*time.Second, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.until(3*time.Second, "the page fits a phone's width, the hold shown", `document.documentElement.scrollWidth <= window.innerWidth &&
		document.querySelector('[data-server="master"] .check .held').offsetParent !== null`)
	b.checkConsole()
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	j, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(j)
}

// clusterState is what a follower replica reports under coordination: a
// leader elsewhere, a replica gone silent, one that sees the master down.
func clusterState() admin.State {
	now := time.Now()
	return admin.State{
		Groups: []admin.GroupState{{Name: "sense", Mode: "failover", Active: "sen1", Epoch: 7, Failback: "auto", Fenced: true,
			Servers: []admin.ServerState{{Name: "sen2", Address: "10.0.0.2:8079", State: "down", Since: now, Pod: "sense-master-0"},
				{Name: "sen1", Address: "10.0.0.1:8079", State: "up", Since: now, Pod: "sense-failover-0"}},
			History: []failover.Switch{}}},
		Cluster: &kube.Status{Identity: "gw-b", Leader: "gw-a", Fenced: true, LastContact: now.Add(-6 * time.Second),
			Replicas: []kube.ReplicaStatus{
				{Identity: "gw-a", Live: true, Renewed: now.Add(-time.Second), Acked: map[string]uint64{"sense": 7}},
				{Identity: "gw-b", Live: true, Renewed: now.Add(-6 * time.Second), Acked: map[string]uint64{"sense": 6}, Down: map[string][]string{"sense": {"sen2"}}},
				{Identity: "gw-c", Live: false, Renewed: now.Add(-40 * time.Second), Acked: map[string]uint64{"sense": 5}},
			}},
	}
}

// cannedGateway serves clusterState to the admin API.
type cannedGateway struct{}

func (cannedGateway) State() admin.State                        { return clusterState() }
func (cannedGateway) Reload(string) error                       { return nil }
func (cannedGateway) Failback(string, string) error             { return nil }
func (cannedGateway) Switch(string, string, string) error       { return nil }
func (cannedGateway) Drain(string, string, string) error        { return nil }
func (cannedGateway) Undrain(string, string, string) error      { return nil }
func (cannedGateway) History(string) ([]failover.Switch, error) { return nil, nil }
func (cannedGateway) Readiness() error                          { return nil }

// TestStatusPageCluster: with coordination, the page (the admin API's own,
// on a canned state of a follower replica) shows the leader, this
// replica and that it is fenced, the epoch, each replica's acknowledged
// epoch, liveness and the servers it sees down.
func TestStatusPageCluster(t *testing.T) {
	s, err := admin.New("127.0.0.1:0", "", cannedGateway{}, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	b := newBrowser(t)
	b.do(10*time.Second, "load the status page", chromedp.Navigate(srv.URL+"/"))
	b.until(5*time.Second, "the coordination is shown", `(() => {
		const c = document.getElementById("cluster");
		const row = (id) => document.querySelector('#replicas tr[data-replica="' + id + '"]');
		const cell = (id, cls) => row(id) && row(id).querySelector("td." + cls).textContent;
		return !c.hidden && c.dataset.fenced === "true" && !document.getElementById("cluster-fenced").hidden &&
			document.getElementById("cluster-leader").textContent === "gw-a" &&
			document.getElementById("cluster-self").textContent === "gw-b (follower) · fenced: sends to no server" &&
			document.getElementById("cluster-epoch").textContent === "sense 7" &&
			/^[67]s ago$/.test(document.getElementById("cluster-contact").textContent) &&
			row("gw-a").textContent.includes("leader") && row("gw-b").textContent.includes("this replica") &&
			cell("gw-a", "acked") === "sense 7" && cell("gw-b", "acked") === "sense 6" && cell("gw-c", "acked") === "sense 5" &&
			cell("gw-a", "live") === "yes" && cell("gw-c", "live") === "no" && row("gw-c").dataset.live === "false" &&
			cell("gw-b", "down") === "sense: sen2" && cell("gw-a", "down") === "—";
	})()`)
	b.until(2*time.Second, "the group says this replica is fenced", `(() => {
		const f = document.querySelector('#group-sense .badge.fenced');
		return !!f && !f.hidden;
	})()`)
	b.screenshot(filepath.Join(artifactDir(t), "status-page-cluster.png"))
	b.do(5*time.Second, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.until(3*time.Second, "the page fits a phone's width", `document.documentElement.scrollWidth <= window.innerWidth`)
	b.checkConsole()
}

// stateServer is the part of the admin API's state these tests read.
type stateServer struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Drained    bool       `json:"drained"`
	HeldUntil  *time.Time `json:"heldUntil"`
	HeldReason string     `json:"heldReason"`
}

// apiServer reads one server's state from the admin API.
func apiServer(t *testing.T, g *gw, group, server string) stateServer {
	t.Helper()
	var st struct {
		Groups []struct {
			Name    string        `json:"name"`
			Servers []stateServer `json:"servers"`
		} `json:"groups"`
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + g.admin + "/api/v1/state")
	if err != nil {
		t.Fatalf("admin state: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("admin state: %v", err)
	}
	for _, gr := range st.Groups {
		for _, s := range gr.Servers {
			if gr.Name == group && s.Name == server {
				return s
			}
		}
	}
	t.Fatalf("admin state has no server %s in group %s", server, group)
	return stateServer{}
}

// apiRefusal posts to path, expects a refusal and returns its error text.
func apiRefusal(t *testing.T, g *gw, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Post("http://"+g.admin+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode < 400 || body.Error == "" {
		t.Fatalf("POST %s: %d %+v (%v), want a refusal with an error", path, resp.StatusCode, body, err)
	}
	return body.Error
}

// artifactDir is where screenshots go: $TANDEM_ARTIFACTS if set, else the
// test's artifact directory (kept with go test -artifacts).
func artifactDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("TANDEM_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("TANDEM_ARTIFACTS: %v", err)
		}
		return dir
	}
	return t.ArtifactDir()
}

// browser is a headless Chromium with one tab.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string // exceptions and console errors of the page
}

// newBrowser starts Debian's Chromium headless with a fresh profile; the
// browser is closed when the test ends. A missing Chromium fails the test:
// in CI a missing dependency is a failure, not a skip.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the status page test needs Chromium at %s (%v); install it with `apt-get install -y chromium` (.ci/run does)", chromiumPath, err)
	}
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// /dev/shm is small in containers; Chromium crashes when it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	}
	// Every wait below has its own bound; this one ends the browser if the
	// test hangs anyway.
	root, cancelRoot := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx() // closes the browser and waits for it
		cancelAlloc()
		cancelRoot()
		if t.Failed() {
			t.Logf("--- output of chromium ---\n%s", out.String())
		}
	})
	b := &browser{t: t, ctx: ctx}
	start, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // the first action starts Chromium and opens the tab
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v\n%s", err, out.String())
		}
	case <-start.Done():
		t.Fatalf("chromium did not start within 20s\n%s", out.String())
	}
	// Record what the page says on its console: uncaught exceptions and
	// errors (a Content-Security-Policy violation is one). Failed loads
	// ("network") are expected: a refused action answers 409.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions within d.
func (b *browser) do(d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.pageText())
	}
}

// text returns the text of the element that matches the CSS selector.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// until polls the JavaScript condition js until it holds, and returns how
// long that took; the test fails when d passes first.
func (b *browser) until(d time.Duration, what, js string) time.Duration {
	b.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err == nil && ok {
			return time.Since(start)
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("%s: not seen within %v (last error: %v)\npage: %s", what, d, last, b.pageText())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// pageText is the visible text of the page, for failure reports.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return s
}

// screenshot saves a PNG of the whole page to path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s", path)
}

// checkConsole fails the test if the page threw or logged an error.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("page console: %s", p)
	}
}
