// Package demoapp is a small stateful-looking web app used by `tandem demo`
// and by the tests as a real backend process: it reports its name on every
// page, serves /status for health checks and a websocket that ticks.
package demoapp

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

//go:embed index.html
var indexHTML []byte

// Version is reported by /status; the reference health check expects the
// body to contain "version".
const Version = "demo-1"

// App is one instance.
type App struct {
	Name    string
	started time.Time
	hits    atomic.Int64
	// cancelled counts /slow requests whose client (the gateway) went away.
	cancelled atomic.Int64
	// unhealthy makes /status answer 503 (toggled by POST /admin/health).
	unhealthy atomic.Bool
	// epochs counts the /hello requests served per gateway epoch
	// (X-Tandem-Epoch), so a test can check that no two instances served
	// the same epoch.
	mu     sync.Mutex
	epochs map[string]int64
}

// Handler returns the app's routes.
func (a *App) Handler() http.Handler {
	a.started = time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		if a.unhealthy.Load() {
			http.Error(w, `{"error":"unhealthy"}`, http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{"version": Version, "name": a.Name, "epoch": r.Header.Get("X-Tandem-Epoch"),
			"uptime": time.Since(a.started).Round(time.Second).String()})
	})
	mux.HandleFunc("POST /admin/health", func(w http.ResponseWriter, r *http.Request) {
		a.unhealthy.Store(r.URL.Query().Get("ok") == "false")
		fmt.Fprintf(w, "unhealthy=%v\n", a.unhealthy.Load())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		n := a.hits.Add(1)
		w.Header().Set("X-Served-By", a.Name)
		if e := r.Header.Get("X-Tandem-Epoch"); e != "" {
			a.mu.Lock()
			if a.epochs == nil {
				a.epochs = map[string]int64{}
			}
			a.epochs[e]++
			a.mu.Unlock()
			w.Header().Set("X-Served-Epoch", e)
		}
		fmt.Fprintf(w, "hello from %s (request %d)\n", a.Name, n)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", a.Name)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %d %s", a.Name, r.Method, len(b), b)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			a.cancelled.Add(1)
			return
		}
		w.Header().Set("X-Served-By", a.Name)
		fmt.Fprintf(w, "%s slept %dms\n", a.Name, ms)
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", a.Name)
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		epochs := maps.Clone(a.epochs)
		a.mu.Unlock()
		writeJSON(w, map[string]any{"name": a.Name, "cancelled": a.cancelled.Load(), "epochs": epochs})
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"name": a.Name, "host": r.Host, "header": r.Header})
	})
	mux.HandleFunc("GET /websocket", a.websocket)
	return mux
}

// websocket greets with the instance name, echoes messages and ticks.
func (a *App) websocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	if err := c.Write(ctx, websocket.MessageText, []byte("hello from "+a.Name)); err != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			msg := fmt.Sprintf("tick %d from %s", i, a.Name)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Run serves on addr until ctx ends.
func (a *App) Run(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo app %s: %w", a.Name, err)
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("demo app listening", "name", a.Name, "address", ln.Addr().String(), "pid", os.Getpid())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
