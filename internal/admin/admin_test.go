package admin

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/failover"
)

// fakeController records actions and refuses unknown names the way the
// gateway does.
type fakeController struct {
	calls []string
	state State
}

func (f *fakeController) State() State { return f.state }
func (f *fakeController) Reload(by string) error {
	f.calls = append(f.calls, "reload by "+by)
	return nil
}

func (f *fakeController) check(group, server string) error {
	if group != "app" {
		return fmt.Errorf("%w: %q", ErrNoSuchGroup, group)
	}
	if server != "" && server != "master" && server != "failover" {
		return fmt.Errorf("%w: %q", failover.ErrNoSuchServer, server)
	}
	return nil
}

func (f *fakeController) Failback(group, by string) error {
	f.calls = append(f.calls, "failback "+group)
	return f.check(group, "")
}
func (f *fakeController) Switch(group, server, by string) error {
	f.calls = append(f.calls, "switch "+group+" "+server)
	return f.check(group, server)
}
func (f *fakeController) Drain(group, server, by string) error {
	if server == "failover" {
		return fmt.Errorf("%w: failover is already drained", ErrConflict)
	}
	return f.check(group, server)
}
func (f *fakeController) Undrain(group, server, by string) error { return f.check(group, server) }
func (f *fakeController) Readiness() error                       { return nil }

func (f *fakeController) History(group string) ([]failover.Switch, error) {
	return nil, f.check(group, "")
}

func newTestServer(t testing.TB, token string) (*Server, *fakeController) {
	t.Helper()
	tokenFile := ""
	if token != "" {
		tokenFile = filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctl := &fakeController{}
	s, err := New("127.0.0.1:0", tokenFile, ctl, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s, ctl
}

func TestActionsAndRefusals(t *testing.T) {
	s, ctl := newTestServer(t, "tok")
	h := s.Handler()
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/", "", 200},
		{"GET", "/api/v1/state", "", 401},
		{"GET", "/api/v1/state", "wrong", 401},
		{"GET", "/api/v1/state", "tok", 200},
		{"POST", "/api/v1/groups/app/failback", "tok", 200},
		{"POST", "/api/v1/groups/nope/failback", "tok", 404},
		{"POST", "/api/v1/groups/app/switch/failover", "tok", 200},
		{"POST", "/api/v1/groups/app/switch/ghost", "tok", 404},
		{"GET", "/api/v1/groups/app/switch/failover", "tok", 405},
		{"POST", "/api/v1/groups/app/servers/master/drain", "tok", 200},
		{"POST", "/api/v1/reload", "", 401},
		{"POST", "/api/v1/reload", "tok", 200},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (token %q): %d, want %d: %s", tc.method, tc.path, tc.token, rec.Code, tc.want, rec.Body)
		}
	}
	if got := strings.Join(ctl.calls, "; "); !strings.Contains(got, "switch app failover") || !strings.Contains(got, "reload by admin API from") {
		t.Errorf("actions reached the controller as %q", got)
	}
}

// TestNothingToDo: an action already in effect is a success that changed
// nothing (200, result "nothing to do" and what is in effect); a real
// refusal stays an error.
func TestNothingToDo(t *testing.T) {
	s, _ := newTestServer(t, "")
	h := s.Handler()
	for _, tc := range []struct {
		path       string
		code       int
		want, none string
	}{
		{"/api/v1/groups/app/servers/failover/drain", 200, `"result": "nothing to do"`, ""},
		{"/api/v1/groups/app/servers/failover/drain", 200, `"message": "failover is already drained"`, "error"},
		{"/api/v1/groups/app/servers/master/drain", 200, `"result": "ok"`, "nothing"},
		{"/api/v1/groups/app/servers/ghost/drain", 404, `"error": "no such server`, "result"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", tc.path, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) || tc.none != "" && strings.Contains(rec.Body.String(), tc.none) {
			t.Errorf("POST %s: %d %s, want %d with %s", tc.path, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
}

// FuzzAdmin: whatever a client sends, the admin API never panics, never
// answers 5xx, and never acts without the token.
func FuzzAdmin(f *testing.F) {
	for _, seed := range []struct{ method, path, auth, body string }{
		{"GET", "/api/v1/state", "Bearer tok", ""},
		{"POST", "/api/v1/groups/app/switch/master", "Bearer tok", ""},
		{"POST", "/api/v1/groups/%2e%2e/switch/..%2f", "Bearer tok", "{}"},
		{"POST", "/api/v1/reload", "Bearer tokk", ""},
		{"DELETE", "/debug/pprof/", "", ""},
		{"POST", "/api/v1/groups/app/servers/master/drain?x=1", "bearer tok", "x"},
	} {
		f.Add(seed.method, seed.path, seed.auth, seed.body)
	}
	s, ctl := newTestServer(f, "tok")
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, path, auth, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://admin"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a server could receive
		}
		req.Header.Set("Authorization", auth)
		before := len(ctl.calls)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d", method, path, rec.Code)
		}
		if auth != "Bearer tok" && len(ctl.calls) != before {
			t.Fatalf("%s %q acted without the token: %v", method, path, ctl.calls[before:])
		}
		if rec.Code == 200 && auth != "Bearer tok" && strings.HasPrefix(req.URL.Path, "/api/") {
			t.Fatalf("%s %q answered 200 without the token", method, path)
		}
	})
}
