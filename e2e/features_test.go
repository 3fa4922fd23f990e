package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// TestPins: a Host pin sends requests to its server while it is healthy;
// when it is not, strict answers 503 and non-strict uses the active server.
func TestPins(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+`    pin:
      - {host: master.example.test, server: master}
      - {host: failover.example.test, server: failover}
      - {host: strict.example.test, server: failover, strict: true}
    failback: {policy: manual}
`)
	hostGet := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/hello", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Served-By")
	}
	for host, want := range map[string]string{"master.example.test": "master", "failover.example.test": "failover",
		"FAILOVER.example.test:80": "failover", "strict.example.test": "failover", "other.example.test": "master"} {
		if code, got := hostGet(host); code != 200 || got != want {
			t.Errorf("Host %s: %d from %q, want 200 from %q", host, code, got, want)
		}
	}
	backup.kill()
	if code, got := hostGet("failover.example.test"); code != 200 || got != "master" {
		t.Errorf("non-strict pin to a dead server: %d from %q, want 200 from the active master", code, got)
	}
	if code, _ := hostGet("strict.example.test"); code != http.StatusServiceUnavailable {
		t.Errorf("strict pin to a dead server: %d, want 503", code)
	}
}

// TestNoServer: both servers down gives 503 with Retry-After; traffic
// resumes when either returns.
func TestNoServer(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg)
	master.kill()
	backup.kill()
	resp, err := http.Get("http://" + g.addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("both down: %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	startApp(t, "failover", backup.addr)
	if !untilTrue(3*time.Second, func() bool { return get(http.DefaultClient, "http://"+g.addr+"/hello").server == "failover" }) {
		t.Error("traffic did not resume on the failover once it returned")
	}
}

// TestForwardedHeaders: the client's forwarding headers are only believed
// from a trusted proxy; responses name nothing internal.
func TestForwardedHeaders(t *testing.T) {
	master := startApp(t, "master", "")
	cases := []struct {
		name, trusted, wantXFF, wantFwd string
	}{
		{"untrusted peer", "", "127.0.0.1", `for=127.0.0.1;host="site.test";proto=http`},
		{"trusted peer", "trustedProxies: [127.0.0.0/8]\n", "6.6.6.6, 127.0.0.1", `for=6.6.6.6, for=127.0.0.1;host="site.test";proto=http`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, strings.Replace(gwConfig(master), "groups:", tc.trusted+"groups:", 1)+healthCfg)
			req, _ := http.NewRequest("GET", "http://"+g.addr+"/headers", nil)
			req.Host = "site.test"
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			req.Header.Set("Forwarded", "for=6.6.6.6")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Tandem-Epoch", "999")              // forged: the gateway's own must replace it
			req.Header.Set("X-Tandem-Role", "active; epoch=999") // forged: only the gateway's checks say it
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got struct {
				Host   string
				Header http.Header
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if v := got.Header.Get("X-Forwarded-For"); v != tc.wantXFF {
				t.Errorf("X-Forwarded-For %q, want %q", v, tc.wantXFF)
			}
			if v := got.Header.Get("Forwarded"); v != tc.wantFwd {
				t.Errorf("Forwarded %q, want %q", v, tc.wantFwd)
			}
			if v := got.Header.Values("X-Tandem-Epoch"); len(v) != 1 || v[0] != "1" {
				t.Errorf("X-Tandem-Epoch %q at the server, want the gateway's 1 only", v)
			}
			if v := got.Header.Values("X-Tandem-Role"); len(v) != 0 {
				t.Errorf("a client's X-Tandem-Role reached the server: %q", v)
			}
			if tc.trusted == "" && got.Header.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("X-Forwarded-Proto %q from an untrusted client, want http", got.Header.Get("X-Forwarded-Proto"))
			}
			if got.Host != "site.test" || got.Header.Get("X-Forwarded-Host") != "site.test" {
				t.Errorf("Host %q X-Forwarded-Host %q, want site.test", got.Host, got.Header.Get("X-Forwarded-Host"))
			}
			for _, h := range []string{"X-Tandem-Server", "Server", "Via"} {
				if v := resp.Header.Get(h); v != "" {
					t.Errorf("response names %s: %q", h, v)
				}
			}
		})
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and localhost.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := testcert.New(t)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{certFile: c.CertPEM, keyFile: c.KeyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, c.Pool
}

// TestHTTPS: TLS with HTTP/2, HSTS on HTTPS responses, TLS below 1.2
// refused, and the HTTP listener answering 301 to the same URL on https.
func TestHTTPS(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	httpsAddr := freePort(t)
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	cfg := strings.Replace(gwConfig(master, backup), "listeners:\n", "listeners:\n  - {name: https, address: "+httpsAddr+
		", tls: {cert: "+certFile+", key: "+keyFile+"}, hsts: {maxAge: 16000000, preload: true}}\n", 1)
	cfg = strings.Replace(cfg, "{name: http, address: LISTEN}", "{name: http, address: LISTEN, redirectHTTPS: true}", 1)
	g := startGateway(t, cfg+healthCfg+wsCfg)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+g.addr+"/some/path?q=1&r=two", nil)
	req.Host = "shop.example.test"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://shop.example.test:" + httpsPort + "/some/path?q=1&r=two"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("HTTP: %d Location %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	c := &http.Client{Transport: tr}
	resp, err = c.Get("https://" + httpsAddr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("HTTPS: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); v != "max-age=16000000; preload" {
		t.Errorf("Strict-Transport-Security %q", v)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v", resp.TLS)
	}
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.1":           {RootCAs: pool, MaxVersion: tls.VersionTLS11},
		"TLS 1.2 CBC suite": {RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		if resp, err := c.Get("https://" + httpsAddr + "/hello"); err == nil {
			resp.Body.Close()
			t.Errorf("a %s client was served, want a refused handshake", name)
		}
	}
	modern := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}}}
	if resp, err := modern.Get("https://" + httpsAddr + "/hello"); err != nil {
		t.Errorf("a TLS 1.2 client with a modern suite was refused: %v", err)
	} else {
		resp.Body.Close()
		// HTTP/1.1 over TLS (tandem's own server) sets HSTS too.
		if resp.ProtoMajor != 1 || resp.Header.Get("Strict-Transport-Security") != "max-age=16000000; preload" {
			t.Errorf("HTTP/1.1 over TLS: %s, Strict-Transport-Security %q", resp.Proto, resp.Header.Get("Strict-Transport-Security"))
		}
	}
	// A websocket over TLS: the upgrade goes from tandem's HTTP/1.1 server
	// to net/http's, TLS state and all, and reaches the master.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ws, _, err := websocket.Dial(ctx, "wss://"+httpsAddr+"/websocket", &websocket.DialOptions{HTTPClient: wsc})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), "master") {
		t.Errorf("wss first message %q, %v; want the master's hello", msg, err)
	}
}

// TestReload: reloads under load fail no request and cause no switch; a
// bad config is refused by SIGHUP and by `tandem reload`, and the running
// config keeps serving.
func TestReload(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	base := gwConfig(master, backup) + healthCfg + wsCfg
	g := startGateway(t, base)
	url := "http://" + g.addr + "/hello"
	ws := dialAll(t, g.addr, 3)
	l := runLoad(20, 20*time.Second, func(c *http.Client) result { return get(c, url) })

	write := func(cfg string) { writeConfig(t, g, cfg) }
	for i, extra := range []string{"    failback: {policy: manual}\n", "    retry: {attempts: 2}\n", "    failback: {policy: auto, after: 2s}\n"} {
		write(base + extra)
		if i%2 == 0 {
			g.signal(syscall.SIGHUP)
		} else if out, code := g.cli("reload"); code != 0 {
			t.Errorf("tandem reload: exit %d: %s", code, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	write(base + "    failback: {policy: sometimes}\n")
	out, code := g.cli("reload")
	if code == 0 || !strings.Contains(out, "failback.policy") {
		t.Errorf("reload of a bad config: exit %d, output %q; want a refusal naming the field", code, out)
	}
	g.signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	rs := l.finish()
	if f := failures(rs); len(f) > 0 {
		t.Errorf("%d of %d requests failed across reloads:\n%s", len(f), len(rs), describeFailures(f))
	}
	for _, r := range rs {
		if r.server != "master" {
			t.Fatalf("a request went to %q during reloads: spurious switch", r.server)
		}
	}
	for i, w := range ws {
		select {
		case <-w.done:
			t.Errorf("websocket %d was closed (code %d) by reloads that did not concern it", i, w.code)
		default:
		}
	}
	if !strings.Contains(g.out.String(), "config reload refused") {
		t.Error("the refused SIGHUP reload was not logged")
	}
	if n := strings.Count(g.out.String(), "config reloaded"); n != 3 {
		t.Errorf("%d reloads logged, want 3", n)
	}
}

// TestBadConfig: `tandem check` and `tandem gateway` refuse a bad file
// before anything listens, listing every problem by file and line.
func TestBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`listeners:
  - {name: http, address: "127.0.0.1:99999"}
groups:
  - name: app
    servers:
      - {name: a, address: "127.0.0.1:1"}
    health: {interval: soon}
    pin:
      - {host: x.test, server: nobody}
`), 0o600)
	for _, args := range [][]string{{"check", "-c", path}, {"gateway", "-c", path}} {
		p := start(t, args[0], args...)
		if code := p.wait(5 * time.Second); code != 2 {
			t.Errorf("tandem %s: exit %d, want 2", args[0], code)
		}
		out := p.out.String()
		for _, want := range []string{
			path + `:2: listeners[0].address: port "99999" is out of range 1-65535`,
			path + `:7: groups[0].health.interval: "soon" is not a duration`,
			path + `:9: groups[0].pin[0].server: no server named "nobody" in group "app"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("tandem %s output lacks %q:\n%s", args[0], want, out)
			}
		}
	}

	// A file the gateway would load is checked as well: check says no to
	// a certificate the gateway could not load, at its line.
	noCert := filepath.Join(t.TempDir(), "tls.yaml")
	os.WriteFile(noCert, []byte(`listeners:
  - name: https
    address: "127.0.0.1:8443"
    tls: {cert: /nonexistent/tls.crt, key: /nonexistent/tls.key}
groups:
  - name: app
    servers:
      - {name: a, address: "127.0.0.1:1"}
`), 0o600)
	p := start(t, "check", "check", "-c", noCert)
	if code := p.wait(5 * time.Second); code != 2 {
		t.Errorf("tandem check of a config with missing certificate files: exit %d, want 2:\n%s", code, p.out.String())
	}
	for _, want := range []string{
		noCert + ":4: listeners[0].tls.cert: certificate /nonexistent/tls.crt does not exist",
		noCert + ":4: listeners[0].tls.key: key /nonexistent/tls.key does not exist",
	} {
		if !strings.Contains(p.out.String(), want) {
			t.Errorf("tandem check output lacks %q:\n%s", want, p.out.String())
		}
	}
}

// TestLimits: oversized headers and bodies are refused.
func TestLimits(t *testing.T) {
	master := startApp(t, "master", "")
	cfg := strings.Replace(gwConfig(master), "groups:", "limits: {maxHeaderBytes: 8KiB}\ngroups:", 1)
	g := startGateway(t, cfg+healthCfg+"    maxBodyBytes: 1KiB\n    retry: {bufferBytes: 512}\n")
	req, _ := http.NewRequest("GET", "http://"+g.addr+"/hello", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16KiB header: %d, want 431", resp.StatusCode)
	}
	for _, chunked := range []bool{false, true} {
		body := strings.NewReader(strings.Repeat("b", 4<<10))
		req, _ = http.NewRequest("POST", "http://"+g.addr+"/echo", body)
		if chunked {
			req.ContentLength = -1
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("4KiB body (chunked %v): %d, want 413", chunked, resp.StatusCode)
		}
	}
}

// TestRoundRobinSticky: a roundrobin group spreads requests over its
// servers; with a sticky cookie a client stays on its server, and moves
// when that server dies.
func TestRoundRobinSticky(t *testing.T) {
	a, b := startApp(t, "alpha", ""), startApp(t, "beta", "")
	cfg := strings.Replace(gwConfig(a, b), "backup: true", "backup: false", 1)
	g := startGateway(t, cfg+healthCfg+"    mode: roundrobin\n    sticky: {cookie: TANDEM_SERVER}\n")
	url := "http://" + g.addr + "/hello"

	seen := map[string]int{}
	for range 20 {
		seen[get(http.DefaultClient, url).server]++
	}
	if seen["alpha"] < 5 || seen["beta"] < 5 {
		t.Errorf("cookieless requests spread %v, want both servers used", seen)
	}
	jar := &cookieJar{}
	c := &http.Client{Jar: jar}
	first := get(c, url).server
	if jar.value == "" || strings.Contains(jar.value, first) {
		t.Fatalf("sticky cookie %q: want an opaque value naming nothing internal", jar.value)
	}
	for range 10 {
		if s := get(c, url).server; s != first {
			t.Fatalf("sticky client moved from %s to %s", first, s)
		}
	}
	if first == "alpha" {
		a.kill()
	} else {
		b.kill()
	}
	r := get(c, url)
	if r.status != 200 || r.server == first {
		t.Errorf("after its server died, the sticky client got %d from %q", r.status, r.server)
	}
	if s := get(c, url).server; s != r.server {
		t.Errorf("the sticky client did not stay on its new server: %s then %s", r.server, s)
	}
}

// cookieJar keeps the one cookie the gateway sets, whatever the host.
type cookieJar struct{ value string }

func (j *cookieJar) SetCookies(_ *neturl.URL, cs []*http.Cookie) {
	for _, c := range cs {
		if c.Name == "TANDEM_SERVER" {
			j.value = c.Value
		}
	}
}

func (j *cookieJar) Cookies(*neturl.URL) []*http.Cookie {
	if j.value == "" {
		return nil
	}
	return []*http.Cookie{{Name: "TANDEM_SERVER", Value: j.value}}
}

// TestOperatorSwitch: `tandem switch` moves traffic and holds it there
// against automatic failback; refusals exit non-zero with a reason.
func TestOperatorSwitch(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+"    failback: {policy: auto}\n")
	url := "http://" + g.addr + "/hello"
	if out, code := g.cli("switch", "app", "failover"); code != 0 {
		t.Fatalf("tandem switch: exit %d: %s", code, out)
	}
	time.Sleep(1500 * time.Millisecond) // several health checks: no automatic failback
	if s := get(http.DefaultClient, url).server; s != "failover" {
		t.Errorf("after switch, served by %q", s)
	}
	// The table says the hold is on and what ends it, not the policy it suspends.
	if out, code := g.cli("status"); code != 0 || !strings.Contains(out, "app: active failover, epoch 2; OPERATOR HOLD on failover: no automatic failback until failover fails or someone runs `failback app`") {
		t.Errorf("tandem status after a switch: exit %d, want the hold shown:\n%s", code, out)
	}
	if out, code := g.cli("switch", "app", "failover"); code != 0 || !strings.Contains(out, "nothing to do: failover is already active") {
		t.Errorf("switch to the active server: exit %d %q, want exit 0 and nothing to do", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"switch", "app", "nobody"}, "no such server"},
		{[]string{"switch", "nogroup", "master"}, "no such group"},
		{[]string{"failback", "nogroup"}, "no such group"},
	} {
		if out, code := g.cli(tc.args...); code != 3 || !strings.Contains(out, tc.want) {
			t.Errorf("tandem %v: exit %d %q, want a refusal (exit 3) with %q", tc.args, code, out, tc.want)
		}
	}
	master.kill()
	// No traffic goes to the held-off master: the health checks see it die.
	if !untilTrue(5*time.Second, func() bool {
		out, _ := g.cli("status", "-o", "json")
		return strings.Contains(out, `"state": "down"`)
	}) {
		t.Fatal("the health checks did not take the killed master out")
	}
	if out, code := g.cli("switch", "app", "master"); code == 0 || !strings.Contains(out, "not available") {
		t.Errorf("switch to a dead server: exit %d %q, want a refusal", code, out)
	}
	out, code := g.cli("status")
	if code != 0 || !strings.Contains(out, "failover") || !strings.Contains(out, "down") {
		t.Errorf("tandem status: exit %d:\n%s", code, out)
	}
	unreachable := exec.Command(bin, "status", "--admin", "http://"+freePort(t))
	if msg, err := unreachable.CombinedOutput(); err == nil || !strings.Contains(string(msg), "unreachable") {
		t.Errorf("status against nothing: err %v, output %q", err, msg)
	}
}

// TestPassive5xx: with count5xx, maxFails answers of 5xx within the window
// take a server out although its health checks pass; the access log has a
// line per request.
func TestPassive5xx(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	cfg := strings.Replace(gwConfig(master, backup), "level: debug}", "level: info, access: true}", 1)
	g := startGateway(t, cfg+healthCfg+"    passive: {maxFails: 3, window: 10s, count5xx: true}\n    failback: {policy: manual}\n")
	for i := range 3 {
		resp, err := http.Get("http://" + g.addr + "/error")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 || resp.Header.Get("X-Served-By") != "master" {
			t.Fatalf("request %d: %d from %q, want the master's 500 passed on", i, resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	}
	if s := get(http.DefaultClient, "http://"+g.addr+"/hello").server; s != "failover" {
		t.Errorf("after 3 answers of 500, served by %q, want the failover", s)
	}
	_, to := lastSwitch(t, g)
	if to != "failover" {
		t.Errorf("last switch to %q", to)
	}
	for _, want := range []string{"answered 500", "msg=access group=app server=master method=GET", "status=500"} {
		if !g.waitOutput(want, 5*time.Second) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
}

// TestClientGoesAway: a client that leaves while the server thinks makes
// the gateway drop the server's request too, and counts against no server.
func TestClientGoesAway(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+"    passive: {maxFails: 1}\n")
	c := &http.Client{Timeout: 300 * time.Millisecond}
	if _, err := c.Get("http://" + g.addr + "/slow?ms=5000"); err == nil {
		t.Fatal("a 5s request answered within 300ms")
	}
	cancelled := func() float64 {
		resp, err := http.Get("http://" + master.addr + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s struct{ Cancelled float64 }
		json.NewDecoder(resp.Body).Decode(&s)
		return s.Cancelled
	}
	if !untilTrue(2*time.Second, func() bool { return cancelled() == 1 }) {
		t.Errorf("the master saw %v cancelled requests, want 1: the gateway kept waiting for a client that left", cancelled())
	}
	if s := get(http.DefaultClient, "http://"+g.addr+"/hello").server; s != "master" {
		t.Errorf("after a client left, served by %q: a client's leaving was held against the master", s)
	}
}
