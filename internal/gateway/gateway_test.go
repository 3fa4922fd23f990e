package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/config"
)

// app is a backend on loopback that passes tandem's checks, accepts
// websockets on /websocket and answers every other request with its name.
func app(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			io.WriteString(w, `{"version":"1"}`)
		case "/websocket":
			echoWebsocket(w, r)
		default:
			io.WriteString(w, name)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// echoWebsocket accepts a websocket and echoes its messages until it ends.
func echoWebsocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, b, err := c.Read(context.Background())
		if err != nil || c.Write(context.Background(), typ, b) != nil {
			return
		}
	}
}

// testConfig is group app in failover mode over master and its backup,
// with checks every hour: after the first, only passive detection and
// the kicks it gives the prober change a server's state.
func testConfig(master, backup *httptest.Server) string {
	return fmt.Sprintf(`listeners: [{name: http, address: "127.0.0.1:0"}]
groups:
  - name: app
    servers:
      - {name: master, address: %q}
      - {name: failover, address: %q, backup: true}
    health: {path: /status, expect: {status: 200, body: version}, interval: 1h, timeout: 1s, rise: 1, fall: 1}
    websocket: {paths: [/websocket], onSwitch: close}
`, master.Listener.Addr().String(), backup.Listener.Addr().String())
}

// startGateway runs a gateway on cfg until the test ends and returns it
// once it serves, with the first check of every server done.
func startGateway(t *testing.T, cfgText string, log *slog.Logger) *Gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	writeConfig(t, path, cfgText)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, path, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-g.Ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not ready")
	}
	until(t, "the first checks", func() bool {
		for _, grp := range g.table.Load().Groups {
			for _, s := range grp.Servers {
				if s.LastCheck() == nil {
					return false
				}
			}
		}
		return true
	})
	return g
}

func writeConfig(t *testing.T, path, cfgText string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
}

// until waits, at most 5s, for cond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// get sends GET path to the gateway and returns the body.
func get(t *testing.T, g *Gateway, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.Addr("http") + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", path, resp.StatusCode, b, err)
	}
	return strings.TrimSpace(string(b))
}
