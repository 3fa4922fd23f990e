package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// haproxySample is issue 10's backend, as operators bring it.
func haproxySample(t *testing.T) string {
	b, err := os.ReadFile("../internal/haproxy/testdata/sense.cfg")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// importHAProxy runs `tandem import haproxy ARGS... FILE` on src.
func importHAProxy(t *testing.T, src string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, append(append([]string{"import", "haproxy"}, args...), file)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return out.String(), strings.ReplaceAll(errb.String(), file, "haproxy.cfg"), cmd.ProcessState.ExitCode()
}

// TestImportHAProxy: issue 10's HAProxy backend, its servers moved to two
// demo apps on loopback, imported with a plain and an HTTPS listener and
// HAProxy's one-file crt; the gateway running the result redirects HTTP
// to HTTPS with 301, sends HSTS, pins master.domain.com and
// failover.domain.com, guards /websocket, and goes to the backup when the
// master dies, though its checks (inter 40000, kept and warned about)
// would take 41 s to notice: the traffic does at once.
func TestImportHAProxy(t *testing.T) {
	master, failover := startApp(t, "master", ""), startApp(t, "failover", "")
	src := strings.NewReplacer(
		"react1.domain.com:8079 check port 8079", failover.addr+" check port "+port(failover.addr),
		"react2.domain.com:8079 check port 8079", master.addr+" check port "+port(master.addr)).Replace(haproxySample(t))
	c := testcert.New(t)
	crt := filepath.Join(t.TempDir(), "site.pem")
	if err := os.WriteFile(crt, append(append([]byte{}, c.CertPEM...), c.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, httpsAddr := freePort(t), freePort(t)
	cfg, stderr, code := importHAProxy(t, src, "--http", plain, "--https", httpsAddr, "--crt", crt)
	if code != 0 || !strings.Contains(stderr, "haproxy.cfg:14: warning: server sen2: inter 40000 (40s): kept as written, but with no traffic tandem's checks notice a dead master only after up to 41.25s") {
		t.Fatalf("import: exit %d, stderr:\n%s\nwant 0 and the warning on inter 40000 with its figure", code, stderr)
	}
	cfgFile := filepath.Join(t.TempDir(), "imported.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "-c", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("tandem check refuses the import: %v\n%s\n%s", err, out, cfg)
	}
	// The harness picks the plain listener's port and the admin address.
	g := startGateway(t, strings.Replace(cfg, plain, "LISTEN", 1)+"admin: {address: ADMIN}\n")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("imported config:\n%s", cfg)
		}
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(url, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v", url, host, err)
		}
		resp.Body.Close()
		return resp
	}

	// Both servers up: the first checks may still be on their way.
	for host, want := range map[string]string{"sense.domain.com": "master", "failover.domain.com": "failover"} {
		if !untilTrue(10*time.Second, func() bool { return do("https://"+httpsAddr+"/hello", host).Header.Get("X-Served-By") == want }) {
			t.Fatalf("Host %s is not served by %s within 10s", host, want)
		}
	}
	resp := do("http://"+g.addr+"/some/path?q=1", "master.domain.com")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://master.domain.com/some/path?q=1" {
		t.Errorf("HTTP: %d to %q, want 301 to https://master.domain.com/some/path?q=1 (HAProxy's redirect keeps the Host)", resp.StatusCode, loc)
	}
	for host, want := range map[string]string{"master.domain.com": "master", "failover.domain.com": "failover", "sense.domain.com": "master"} {
		resp := do("https://"+httpsAddr+"/hello", host)
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != want || resp.Header.Get("Strict-Transport-Security") != "max-age=16000000; preload" {
			t.Errorf("HTTPS Host %s: %d from %q with HSTS %q; want 200 from %s with max-age=16000000; preload", host,
				resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("Strict-Transport-Security"), want)
		}
	}
	if resp := do("https://"+httpsAddr+"/websocket", "sense.domain.com"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /websocket without an upgrade: %d, want 403 from the guard", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+httpsAddr+"/websocket", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("a websocket through the guard: %v", err)
	}
	ws.CloseNow()

	master.kill()
	for host, want := range map[string]string{"sense.domain.com": "failover", "master.domain.com": "failover"} {
		if resp := do("https://"+httpsAddr+"/hello", host); resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != want {
			t.Errorf("master killed, Host %s: %d from %q, want 200 from the backup", host, resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
	}
}

// TestImportHAProxyRefuses: files that cannot become a working config exit
// 2 with nothing on stdout, and say file:line and what is wrong.
func TestImportHAProxyRefuses(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"a backend alone", haproxySample(t), "haproxy.cfg: error: no frontend or listen section binds an address: nothing would listen"},
		{"a quote not closed", "frontend fe\n  mode http\n  bind :80\n  http-response set-header X \"a\n", `haproxy.cfg:4: error: the " quote is not closed on this line`},
		{"a server without a port", "listen app\n  mode http\n  bind :80\n  server s1 10.0.0.1 check\n", `haproxy.cfg:4: error: server s1: "10.0.0.1" has no port`},
		{"TCP only", "listen db\n  mode tcp\n  bind :5432\n  server p 10.0.0.1:5432\n", "haproxy.cfg:1: not translated: listen db: mode tcp (line 2): tandem proxies HTTP only"},
		{"TLS to the servers", "listen app\n  mode http\n  bind :80\n  server s1 10.0.0.1:443 ssl\n", "haproxy.cfg:4: error: server s1: ssl: tandem speaks plain HTTP to its servers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := importHAProxy(t, tc.src)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2, nothing on stdout, and %q", code, stdout, stderr, tc.want)
			}
		})
	}
}

// port is the port of a host:port.
func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
