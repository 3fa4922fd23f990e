package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// TestEngineNetHTTP: with engine net/http the gateway serves plain and
// TLS listeners (HTTP/1.1 and HTTP/2, HSTS) and websockets with net/http's
// server and Transport, says so on each listener's log line, and refuses
// a reload into the other engine, which takes a restart.
func TestEngineNetHTTP(t *testing.T) {
	master, backup := app(t, "master"), app(t, "failover")
	dir := t.TempDir()
	cert := testcert.New(t)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, cert.CertPEM, 0o600)
	os.WriteFile(keyFile, cert.KeyPEM, 0o600)
	tlsListener := `listeners:
  - {name: https, address: "127.0.0.2:0", tls: {cert: ` + certFile + `, key: ` + keyFile + `}, hsts: {maxAge: 600}}
`
	cfg := "engine: net/http\n" + strings.Replace(testConfig(master, backup), "listeners: [{name: http, address: \"127.0.0.1:0\"}]\n",
		tlsListener+"  - {name: http, address: \"127.0.0.1:0\"}\n", 1)
	var logs strings.Builder
	lw := &syncWriter{w: &logs}
	g := startGateway(t, cfg, slog.New(slog.NewTextHandler(lw, nil)))

	if got := get(t, g, "/hello"); got != "master" {
		t.Errorf("plain HTTP: %q, want the master's answer", got)
	}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + g.Addr("https") + "/hello")
		if err != nil {
			t.Fatalf("HTTPS (h2 %v): %v", h2, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "master" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] || resp.Header.Get("Strict-Transport-Security") != "max-age=600" {
			t.Errorf("HTTPS (h2 %v): %q over %s, HSTS %q", h2, b, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
		}
		tr.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+g.Addr("http")+"/websocket", nil)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "ping" {
		t.Errorf("websocket echo %q %v", b, err)
	}

	lw.mu.Lock()
	logged := logs.String()
	lw.mu.Unlock()
	if n := strings.Count(logged, "engine=net/http"); n != 2 {
		t.Errorf("%d listening lines say engine=net/http, want 2:\n%s", n, logged)
	}
	writeConfig(t, g.path, strings.Replace(cfg, "engine: net/http\n", "", 1))
	if err := g.Reload("test"); err == nil || !strings.Contains(err.Error(), "engine: changed from net/http to tandem: restart tandem to apply it") {
		t.Errorf("reload into the tandem engine: %v, want a refusal that says a restart applies it", err)
	}
	if got := get(t, g, "/hello"); got != "master" {
		t.Errorf("after the refused reload: %q", got)
	}
}
