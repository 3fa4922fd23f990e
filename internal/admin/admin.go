// Package admin serves the control API on its own listener: state of every
// group and the operator's actions. It listens on loopback by default and
// requires a bearer token when configured with one.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

// Controller is what the admin API acts on.
type Controller interface {
	State() State
	Reload(by string) error
	Failback(group, by string) error
	Switch(group, server, by string) error
	Drain(group, server, by string) error
	Undrain(group, server, by string) error
	History(group string) ([]failover.Switch, error)
	// Readiness is nil once the gateway can route every group.
	Readiness() error
}

// Server is the admin HTTP server.
type Server struct {
	addr    string
	token   string
	ctl     Controller
	metrics http.Handler
	log     *slog.Logger
	// Addr is the bound address once Run listens.
	Addr chan string
}

// New returns an admin server on addr serving ctl's state and actions and
// the metrics handler; tokenFile, if set, holds the bearer token.
func New(addr, tokenFile string, ctl Controller, metrics http.Handler, log *slog.Logger) (*Server, error) {
	s := &Server{addr: addr, ctl: ctl, metrics: metrics, log: log, Addr: make(chan string, 1)}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		s.token = strings.TrimSpace(string(b))
		if s.token == "" {
			return nil, fmt.Errorf("admin token file %s is empty", tokenFile)
		}
	}
	return s, nil
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /metrics", s.metrics)
	// Profiles, for the operator who must explain a CPU or memory figure.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// For the replicas' own readiness probes: says what it waits for.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ctl.Readiness(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.ctl.State()) })
	mux.HandleFunc("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		s.act(w, r, "reload", func(by string) error { return s.ctl.Reload(by) })
	})
	mux.HandleFunc("POST /api/v1/groups/{group}/failback", func(w http.ResponseWriter, r *http.Request) {
		s.act(w, r, "failback", func(by string) error { return s.ctl.Failback(r.PathValue("group"), by) })
	})
	mux.HandleFunc("POST /api/v1/groups/{group}/switch/{server}", func(w http.ResponseWriter, r *http.Request) {
		s.act(w, r, "switch", func(by string) error { return s.ctl.Switch(r.PathValue("group"), r.PathValue("server"), by) })
	})
	mux.HandleFunc("POST /api/v1/groups/{group}/servers/{server}/drain", func(w http.ResponseWriter, r *http.Request) {
		s.act(w, r, "drain", func(by string) error { return s.ctl.Drain(r.PathValue("group"), r.PathValue("server"), by) })
	})
	mux.HandleFunc("POST /api/v1/groups/{group}/servers/{server}/undrain", func(w http.ResponseWriter, r *http.Request) {
		s.act(w, r, "undrain", func(by string) error { return s.ctl.Undrain(r.PathValue("group"), r.PathValue("server"), by) })
	})
	mux.HandleFunc("GET /api/v1/groups/{group}/history", func(w http.ResponseWriter, r *http.Request) {
		h, err := s.ctl.History(r.PathValue("group"))
		if err != nil {
			writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, h)
	})
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page and liveness carry no data; the page asks for the token.
		if s.token != "" && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
				s.log.Warn("admin request refused: bad or missing token", "remote", r.RemoteAddr, "path", r.URL.Path)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// act runs one operator action, logs who asked, and maps its error.
func (s *Server) act(w http.ResponseWriter, r *http.Request, name string, do func(by string) error) {
	by := r.Header.Get("X-Tandem-User")
	if by == "" {
		by = "admin API"
	}
	by += " from " + r.RemoteAddr
	err := do(by)
	if nothingToDo(err) {
		// What was asked is already in effect: a success that changed
		// nothing, so that repeating an action in a runbook is safe.
		s.log.Info("admin action had nothing to do", "action", name, "by", by, "path", r.URL.Path, "detail", err)
		msg := err.Error()
		for strings.HasPrefix(msg, ResultNothingToDo+": ") {
			msg = strings.TrimPrefix(msg, ResultNothingToDo+": ") // the result says it already
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": ResultNothingToDo, "message": msg})
		return
	}
	if err != nil {
		s.log.Warn("admin action refused", "action", name, "by", by, "path", r.URL.Path, "error", err)
		writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
		return
	}
	s.log.Info("admin action done", "action", name, "by", by, "path", r.URL.Path)
	writeJSON(w, http.StatusOK, map[string]string{"result": ResultOK})
}

// Results of an action the API carried out (200).
const (
	ResultOK = "ok"
	// ResultNothingToDo: what was asked was already in effect (switch to
	// the active server, failback when on the preferred server, a second
	// drain); "message" says what is in effect.
	ResultNothingToDo = "nothing to do"
)

func nothingToDo(err error) bool {
	return errors.Is(err, failover.ErrNothingToDo) || errors.Is(err, ErrConflict)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNoSuchGroup), errors.Is(err, failover.ErrNoSuchServer):
		return http.StatusNotFound
	case errors.Is(err, failover.ErrServerDown):
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	s.Addr <- ln.Addr().String()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	s.log.Info("admin API listening", "address", ln.Addr().String(), "token", s.token != "")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}
