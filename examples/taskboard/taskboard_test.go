package taskboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/appkit"
)

// TestPasswords: the stored form verifies its password only, and names
// its algorithm and iterations.
func TestPasswords(t *testing.T) {
	h, err := hashPassword("s3cret-pass", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sha256$1000$") {
		t.Errorf("stored form %q", h)
	}
	h2, _ := hashPassword("s3cret-pass", 1000)
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"s3cret-pass": true, "s3cret-pasS": false, "": false} {
		if ok, err := checkPassword(h, pw); err != nil || ok != want {
			t.Errorf("check %q: %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "md5$x", "pbkdf2-sha256$x$y$z", "pbkdf2-sha256$0$AA$AA"} {
		if _, err := checkPassword(bad, "x"); err == nil {
			t.Errorf("stored form %q accepted", bad)
		}
	}
}

// TestOptions: seeds and key sources.
func TestOptions(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Setenv(KeysEnv, "")
	cfg, err := (&Options{Seed: "alice:pw1, bob:pw2"}).Config(log)
	if err != nil || cfg.Seed["alice"] != "pw1" || cfg.Seed["bob"] != "pw2" || cfg.Keys.Ring() == nil {
		t.Errorf("seed: %+v %v", cfg.Seed, err)
	}
	for _, bad := range []string{"alice", "A!:pw", "alice:"} {
		if _, err := (&Options{Seed: bad}).Config(log); err == nil {
			t.Errorf("seed %q accepted", bad)
		}
	}
	t.Setenv(KeysEnv, "not base64!")
	if _, err := (&Options{}).Config(log); err == nil {
		t.Error("bad keys in the environment accepted")
	}
	if _, err := (&Options{KeyFile: filepath.Join(t.TempDir(), "none")}).Config(log); err == nil {
		t.Error("a missing key file accepted")
	}
}

// runApp runs an instance on SQLite in-process and returns its base URL.
func runApp(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	app, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	base := "http://" + cfg.Addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not become ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func login(t *testing.T, base, name, pw string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 5 * time.Second}}
	_, page := c.do("GET", "/login", "", "", nil)
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in %s", page)
	}
	c.csrf = m[1]
	form := url.Values{"csrf_token": {c.csrf}, "name": {name}, "password": {pw}}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var b BoardView
	if code, body := c.do("GET", "/api/board", "", "", nil); code != 200 || json.Unmarshal([]byte(body), &b) != nil {
		t.Fatalf("board after login: %d %s", code, body)
	}
	c.csrf = b.CSRF
	return c
}

func (c *client) do(method, path, key, body string, hdr map[string]string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if c.csrf != "" {
		req.Header.Set(appkit.CSRFHeader, c.csrf)
	}
	if key != "" {
		req.Header.Set(appkit.IdempotencyHeader, key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) board() BoardView {
	c.t.Helper()
	var b BoardView
	code, body := c.do("GET", "/api/board", "", "", nil)
	if code != 200 || json.Unmarshal([]byte(body), &b) != nil {
		c.t.Fatalf("board: %d %s", code, body)
	}
	return b
}

// TestBoard: the app's API on SQLite: login, create (once per key), move,
// complete, delete, the overdue job, refusals.
func TestBoard(t *testing.T) {
	keys, _ := appkit.ParseKeys(appkit.GenerateKey())
	base := runApp(t, Config{Name: "solo", DSN: filepath.Join(t.TempDir(), "board.db"), Keys: appkit.StaticKeys{R: keys},
		Seed: map[string]string{"alice": "password1"}, Iterations: 1000, Standalone: true, JobEvery: 50 * time.Millisecond})

	anon := &client{t: t, base: base, c: &http.Client{}}
	if code, _ := anon.do("GET", "/api/board", "", "", nil); code != 403 && code != 401 {
		t.Errorf("board without login: %d, want 401", code)
	}
	if code, _ := anon.do("GET", "/", "", "", nil); code != 200 { // redirected to the login page
		t.Errorf("page without login: %d", code)
	}
	c := login(t, base, "alice", "password1")
	if wrong := func() int {
		jar, _ := cookiejar.New(nil)
		w := &client{t: t, base: base, c: &http.Client{Jar: jar}}
		_, page := w.do("GET", "/login", "", "", nil)
		form := url.Values{"csrf_token": {csrfInput.FindStringSubmatch(page)[1]}, "name": {"alice"}, "password": {"nope"}}
		resp, err := w.c.PostForm(base+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}(); wrong != 401 {
		t.Errorf("wrong password: %d, want 401", wrong)
	}

	code, body := c.do("POST", "/api/tasks", "k1", `{"title": "write tests", "dueInMinutes": 0}`, nil)
	var task Task
	if code != 201 || json.Unmarshal([]byte(body), &task) != nil || task.Title != "write tests" || task.Status != "todo" || task.CreatedBy != "alice" {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, again := c.do("POST", "/api/tasks", "k1", `{"title": "write tests", "dueInMinutes": 0}`, nil); code != 201 || again != body {
		t.Errorf("the same key again: %d %s, want the first answer %s", code, again, body)
	}
	if code, _ := c.do("POST", "/api/tasks", "k1", `{"title": "other"}`, nil); code != 422 {
		t.Errorf("the key reused for another body: %d, want 422", code)
	}
	if code, _ := c.do("POST", "/api/tasks", "", `{"title": ""}`, nil); code != 400 {
		t.Errorf("empty title: %d, want 400", code)
	}
	saved := c.csrf
	c.csrf = "forged"
	if code, _ := c.do("POST", "/api/tasks", "", `{"title": "csrf"}`, nil); code != 403 {
		t.Errorf("a forged CSRF token: %d, want 403", code)
	}
	c.csrf = saved

	// The background job marks it overdue (it was due now).
	deadline := time.Now().Add(3 * time.Second)
	for {
		b := c.board()
		if len(b.Tasks) == 1 && b.Tasks[0].Overdue {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task is not overdue 3s after its due date: %+v", b.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	path := fmt.Sprintf("/api/tasks/%d", task.ID)
	if code, body := c.do("POST", path+"/move", "", `{"status": "doing"}`, nil); code != 200 || !strings.Contains(body, `"status":"doing"`) {
		t.Errorf("move: %d %s", code, body)
	}
	if code, _ := c.do("POST", path+"/move", "", `{"status": "nowhere"}`, nil); code != 400 {
		t.Errorf("move to a bad column: %d, want 400", code)
	}
	if code, body := c.do("POST", path+"/complete", "", "", nil); code != 200 || !strings.Contains(body, `"status":"done"`) {
		t.Errorf("complete: %d %s", code, body)
	}
	// The cache shows a write at once; its event id (where a page resumes
	// the hub) follows as the hub reads the events back: create, overdue,
	// move, complete.
	b := c.board()
	if len(b.Tasks) != 1 || b.Tasks[0].Status != "done" {
		t.Errorf("board after the changes: %+v", b)
	}
	for deadline := time.Now().Add(2 * time.Second); b.EventID != 4 && time.Now().Before(deadline); b = c.board() {
		time.Sleep(20 * time.Millisecond)
	}
	if b.EventID != 4 {
		t.Errorf("the board reflects events up to %d, want 4", b.EventID)
	}
	if code, _ := c.do("DELETE", path, "", "", nil); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := c.do("POST", "/api/tasks/999/complete", "", "", nil); code != 404 {
		t.Errorf("complete a missing task: %d, want 404", code)
	}
	if b := c.board(); len(b.Tasks) != 0 {
		t.Errorf("board after the delete: %+v", b.Tasks)
	}
	// Signing up logs in at once.
	jar, _ := cookiejar.New(nil)
	s := &client{t: t, base: base, c: &http.Client{Jar: jar}}
	_, page := s.do("GET", "/login", "", "", nil)
	resp, err := s.c.PostForm(base+"/signup", url.Values{"csrf_token": {csrfInput.FindStringSubmatch(page)[1]}, "name": {"carol"}, "password": {"longenough"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if b := s.board(); b.User != "carol" {
		t.Errorf("after sign-up the board is %q's, want carol's", b.User)
	}
}
