package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/tandemproxy/tandem/appkit"
	"github.com/tandemproxy/tandem/internal/pgtest"
)

// The task board (examples/taskboard) as real processes on one PostgreSQL
// started by the test, behind the real gateway.

const boardPassword = "correct-horse"

// demoPassword is what `tandem demo` seeds and prints.
const demoPassword = "tandem-demo"

// boardHealth detects a dead master within about 300ms.
const boardHealth = `    health: {path: /status, expect: {status: 200, body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 2, fall: 2}
    websocket: {paths: [/websocket], requireUpgrade: true, onSwitch: close}
    retry: {attempts: 3, perTryTimeout: 2s}
    failback: {policy: manual}
`

// boardKeys writes a session key file both instances read.
func boardKeys(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "session-keys")
	if err := os.WriteFile(path, []byte(appkit.GenerateKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startBoard starts a task board instance; it waits for /status to answer
// want (200: serving; 503: refusing).
func startBoard(t *testing.T, name, dsn, keys string, want int, extra ...string) *app {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"taskboard", "--name", name, "--addr", addr, "--db", dsn, "--session-keys", keys,
		"--seed", "alice:" + boardPassword + ",bob:" + boardPassword, "--fence", "--job-every", "300ms"}, extra...)
	a := &app{proc: start(t, "app "+name, args...), addr: addr}
	waitHTTP(t, "http://"+addr+"/status", want)
	return a
}

// boardUser is a logged-in browser-like client.
type boardUser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// loginBoard logs name in through the login form at base.
func loginBoard(t *testing.T, base, name string) *boardUser {
	t.Helper()
	return loginBoardWith(t, base, name, boardPassword)
}

func loginBoardWith(t *testing.T, base, name, password string) *boardUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u := &boardUser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	resp, err := u.c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("login page without a CSRF field: %d %s", resp.StatusCode, page)
	}
	resp, err = u.c.PostForm(base+"/login", url.Values{"csrf_token": {string(m[1])}, "name": {name}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b := u.board()
	if b.User != name {
		t.Fatalf("logged in as %q, want %s", b.User, name)
	}
	u.csrf = b.CSRF
	return u
}

type boardView struct {
	User    string `json:"user"`
	CSRF    string `json:"csrf"`
	Server  string `json:"server"`
	EventID int64  `json:"eventId"`
	Tasks   []struct {
		ID    int64  `json:"id"`
		Title string `json:"title"`
	} `json:"tasks"`
	servedBy string
}

func (u *boardUser) board() boardView {
	u.t.Helper()
	resp, err := u.c.Get(u.base + "/api/board")
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b boardView
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&b) != nil {
		u.t.Fatalf("GET /api/board: %d", resp.StatusCode)
	}
	b.servedBy = resp.Header.Get("X-Served-By")
	return b
}

// post sends one write; it returns the status (0 on a transport error)
// and which instance answered.
func (u *boardUser) post(path, key, body string) (int, string, error) {
	req, _ := http.NewRequest("POST", u.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(appkit.CSRFHeader, u.csrf)
	if key != "" {
		req.Header.Set(appkit.IdempotencyHeader, key)
	}
	resp, err := u.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Served-By"), nil
}

func (u *boardUser) cookieHeader() http.Header {
	bu, _ := url.Parse(u.base)
	h := http.Header{}
	for _, c := range u.c.Jar.Cookies(bu) {
		h.Add("Cookie", c.String())
	}
	return h
}

// boardRole is the role an instance's /status reports.
func boardRole(a *app) string {
	resp, err := http.Get("http://" + a.addr + "/status")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var st appkit.StatusBody
	json.NewDecoder(resp.Body).Decode(&st)
	return string(st.Role)
}

// hubClient follows the hub the way appkit's hub.js does: it reconnects
// after every close, with ?since= the last event id it got.
type hubClient struct {
	mu      sync.Mutex
	ids     []int64
	closes  []websocket.StatusCode
	hellos  []string
	helloAt []time.Time
	stop    chan struct{}
	done    chan struct{}
}

func followHub(t *testing.T, u *boardUser, since int64) *hubClient {
	h := &hubClient{stop: make(chan struct{}), done: make(chan struct{})}
	wsURL := "ws" + strings.TrimPrefix(u.base, "http") + "/websocket"
	last := since
	connected := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(h.done)
		for attempt := 0; attempt < 200; attempt++ {
			select {
			case <-h.stop:
				return
			default:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-h.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			c, _, err := websocket.Dial(ctx, fmt.Sprintf("%s?since=%d", wsURL, last), &websocket.DialOptions{HTTPHeader: u.cookieHeader()})
			if err != nil {
				cancel()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					h.mu.Lock()
					h.closes = append(h.closes, websocket.CloseStatus(err))
					h.mu.Unlock()
					break
				}
				var ev appkit.Event
				json.Unmarshal(b, &ev)
				h.mu.Lock()
				switch {
				case ev.Kind == appkit.KindHello:
					var hello struct{ Server string }
					json.Unmarshal(ev.Data, &hello)
					h.hellos = append(h.hellos, hello.Server)
					h.helloAt = append(h.helloAt, time.Now())
					once.Do(func() { close(connected) })
				case ev.ID > last:
					h.ids = append(h.ids, ev.ID)
					last = ev.ID
				}
				h.mu.Unlock()
			}
			c.CloseNow()
			cancel()
		}
	}()
	select {
	case <-connected:
	case <-time.After(5 * time.Second):
		t.Fatal("the hub client did not connect within 5s")
	}
	t.Cleanup(func() { h.close() })
	return h
}

func (h *hubClient) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func (h *hubClient) lastID() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ids) == 0 {
		return 0
	}
	return h.ids[len(h.ids)-1]
}

// pgQuery connects to dsn for the test's own checks.
func pgConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// querier reads the database under test, PostgreSQL or SQLite.
type querier struct {
	t  *testing.T
	db *appkit.DB
}

func (q querier) int(query string) int {
	q.t.Helper()
	var n int
	if err := q.db.QueryRowContext(context.Background(), query).Scan(&n); err != nil {
		q.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// counts is how many times each task title is in the database.
func (q querier) counts() map[string]int {
	q.t.Helper()
	rows, err := q.db.QueryContext(context.Background(), `SELECT title, COUNT(*) FROM tasks GROUP BY title`)
	if err != nil {
		q.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var title string
		var n int
		if err := rows.Scan(&title, &n); err != nil {
			q.t.Fatal(err)
		}
		out[title] = n
	}
	return out
}

func openQuerier(t *testing.T, dsn string) querier {
	t.Helper()
	db, err := appkit.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return querier{t: t, db: db}
}

// TestTaskboard runs the task board scenarios on one PostgreSQL (a fresh
// database each).
func TestTaskboard(t *testing.T) {
	pg := pgtest.New(t)
	t.Run("KillMasterUnderWriters", func(t *testing.T) { testBoardKillMaster(t, pg.NewDB(t)) })
	// tandem demo's setup: both processes on one SQLite file.
	t.Run("KillMasterUnderWritersSQLite", func(t *testing.T) {
		testBoardKillMaster(t, filepath.Join(t.TempDir(), "board.db"))
	})
	t.Run("OldBinaryRefuses", func(t *testing.T) { testBoardOldBinary(t, pg) })
	t.Run("ConcurrentStartMigratesOnce", func(t *testing.T) { testBoardConcurrentStart(t, pg) })
	t.Run("Browser", func(t *testing.T) { testBoardBrowser(t, pg) })
}

// writeOutcome is what a writer saw for one Idempotency-Key.
type writeOutcome struct {
	key      string
	acked    bool // some attempt got 2xx
	attempts int
	first    int // status of the first attempt (0: transport error)
	by       string
	ackedAt  time.Time
}

// testBoardKillMaster: writers post tasks with Idempotency-Key through the
// gateway while the master is SIGKILLed. Every write acknowledged to a
// client is in the database afterwards, none is applied twice; the
// session keeps working on the failover without a new login; a websocket
// client is told 1012, reconnects and receives every event it missed.
func testBoardKillMaster(t *testing.T, dsn string) {
	keys := boardKeys(t)
	master := startBoard(t, "master", dsn, keys, 200)
	failover := startBoard(t, "failover", dsn, keys, 200)
	g := startGateway(t, gwConfig(master, failover)+boardHealth)
	g.waitActive(t, "master", 5*time.Second)
	base := "http://" + g.addr

	u := loginBoard(t, base, "alice")
	before := u.board()
	if before.servedBy != "master" {
		t.Fatalf("board served by %q before the kill, want master", before.servedBy)
	}
	hub := followHub(t, u, before.EventID)
	// Each instance's own view of its role (/status, from the gateway's
	// epochs shared through the database).
	if !untilTrue(3*time.Second, func() bool { return boardRole(master) == "active" && boardRole(failover) == "standby" }) {
		t.Errorf("roles before the kill: master %s, failover %s; want active, standby", boardRole(master), boardRole(failover))
	}

	// The background job runs on the active instance only: a task due now
	// is marked overdue by the master, never by the standby.
	if status, _, err := u.post("/api/tasks", "due-now", `{"title": "due-now", "dueInMinutes": 0}`); status != 201 {
		t.Fatalf("a task due now: %d %v", status, err)
	}
	if !untilTrue(3*time.Second, func() bool { return strings.Contains(master.out.String(), `msg="tasks marked overdue"`) }) {
		t.Error("the master (active) did not mark the due task overdue within 3s")
	}
	if strings.Contains(failover.out.String(), `msg="tasks marked overdue"`) {
		t.Error("the standby ran the background job")
	}

	const writers = 8
	var (
		mu       sync.Mutex
		outcomes []writeOutcome
		seq      atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			// Each writer has its own connections, as browsers would.
			wu := &boardUser{t: t, base: base, csrf: u.csrf, c: &http.Client{Jar: u.c.Jar, Timeout: 10 * time.Second,
				Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := writeOutcome{key: fmt.Sprintf("w%d-%d", w, seq.Add(1))}
				body := fmt.Sprintf(`{"title": %q}`, o.key)
				// A client retries a failed write with the same key: the
				// server must apply it once however often it arrives.
				for o.attempts < 20 && !o.acked {
					o.attempts++
					status, by, _ := wu.post("/api/tasks", o.key, body)
					if o.attempts == 1 {
						o.first = status
					}
					if status/100 == 2 {
						o.acked, o.by, o.ackedAt = true, by, time.Now()
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		})
	}
	time.Sleep(800 * time.Millisecond)
	killAt := time.Now()
	master.kill()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// The session made on the master works on the failover: no new login.
	after := u.board()
	if after.servedBy != "failover" || after.User != "alice" {
		t.Errorf("after the kill: board served by %q for %q, want the failover, still alice", after.servedBy, after.User)
	}
	if status, by, err := u.post("/api/tasks", "after-the-switch", `{"title": "after-the-switch"}`); status != 201 || by != "failover" {
		t.Errorf("a write with the master's session and CSRF token after the switch: %d by %q (%v), want 201 by the failover", status, by, err)
	}

	// The failover's in-memory board has every acknowledged write, the
	// master's last ones included.
	onBoard := map[string]bool{}
	for _, task := range after.Tasks {
		onBoard[task.Title] = true
	}
	missing := 0
	for _, o := range outcomes {
		if o.acked && !onBoard[o.key] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged writes missing from the failover's board (%d tasks on it)", missing, len(after.Tasks))
	}
	if role := boardRole(failover); role != "active" {
		t.Errorf("the failover's role after the switch: %s, want active", role)
	}

	// A client that never got the master's answer sends its write again,
	// now to the failover: the same answer, nothing applied twice.
	resent := 0
	for _, o := range outcomes {
		if o.acked && o.by == "master" && resent < 5 {
			resent++
			req, _ := http.NewRequest("POST", base+"/api/tasks", strings.NewReader(fmt.Sprintf(`{"title": %q}`, o.key)))
			req.Header.Set(appkit.CSRFHeader, u.csrf)
			req.Header.Set(appkit.IdempotencyHeader, o.key)
			resp, err := u.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" || resp.Header.Get("X-Served-By") != "failover" {
				t.Errorf("write %s sent again after the switch: %d, replayed %q, by %q; want the stored 201 from the failover",
					o.key, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), resp.Header.Get("X-Served-By"))
			}
		}
	}

	// What the database holds.
	db := openQuerier(t, dsn)
	counts := db.counts()
	var acked, firstFailed, afterKill, byFailover int
	firstStatuses := map[int]int{}
	for _, o := range outcomes {
		if counts[o.key] > 1 {
			t.Errorf("write %s applied %d times", o.key, counts[o.key])
		}
		if !o.acked {
			t.Errorf("write %s never acknowledged in %d attempts (first status %d)", o.key, o.attempts, o.first)
			continue
		}
		acked++
		if counts[o.key] != 1 {
			t.Errorf("write %s was acknowledged (%s) but is not in the database", o.key, o.by)
		}
		if o.first/100 != 2 {
			firstFailed++
			firstStatuses[o.first]++
		}
		if o.ackedAt.After(killAt) {
			afterKill++
			if o.by == "failover" {
				byFailover++
			}
		}
	}
	for title, n := range counts {
		if n > 1 {
			t.Errorf("task %q is in the database %d times", title, n)
		}
	}
	replays := db.int(`SELECT COUNT(*) FROM appkit_idempotency`)
	t.Logf("%d writes acknowledged (%d after the kill, %d of them by the failover), %d needed a client retry (first answers %v, 0 = transport error); "+
		"%d tasks in the database, %d idempotency keys, %d replays answered from a stored result",
		acked, afterKill, byFailover, firstFailed, firstStatuses, len(counts), replays, strings.Count(failover.out.String(), `msg="idempotent replay"`))
	// The gateway replays a keyed POST whose server died: none should
	// reach the client as a failure.
	if firstFailed > 0 {
		t.Errorf("%d writes failed at their first attempt (%v); the gateway should have replayed them on the failover", firstFailed, firstStatuses)
	}
	if acked < 50 || byFailover == 0 {
		t.Errorf("too little load to mean anything: %d acknowledged, %d by the failover", acked, byFailover)
	}

	// The websocket: closed with 1012 by the gateway, reconnected to the
	// failover, and every event delivered once, in order, none missing.
	last := int64(db.int(`SELECT n FROM appkit_counter WHERE name = 'events'`))
	if !untilTrue(5*time.Second, func() bool { return hub.lastID() >= last }) {
		t.Errorf("the websocket client got up to event %d of %d", hub.lastID(), last)
	}
	hub.close()
	// No secret in any log: the session key, the password, a session cookie.
	keyFile, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"session key": strings.TrimSpace(string(keyFile)), "password": boardPassword}
	for _, c := range u.c.Jar.Cookies(mustURL(t, base)) {
		secrets["cookie "+c.Name] = c.Value
	}
	for _, p := range []*proc{master.proc, failover.proc, g.proc} {
		for what, v := range secrets {
			if v != "" && strings.Contains(p.out.String(), v) {
				t.Errorf("the %s appears in the log of %s", what, p.name)
			}
		}
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	want := make([]int64, 0, last-before.EventID)
	for id := before.EventID + 1; id <= last; id++ {
		want = append(want, id)
	}
	if !slices.Equal(hub.ids, want) {
		t.Errorf("websocket events: %d received, want %d (ids %d..%d) each once in order", len(hub.ids), len(want), before.EventID+1, last)
	}
	if !slices.Contains(hub.closes, websocket.StatusServiceRestart) {
		t.Errorf("websocket close codes %v, want 1012 (service restart) at the switch", hub.closes)
	}
	if len(hub.hellos) < 2 || hub.hellos[0] != "master" || hub.hellos[1] != "failover" {
		t.Errorf("websocket greeted by %v, want the master then the failover", hub.hellos)
	} else {
		t.Logf("websocket back on the failover %v after the kill; %d events delivered, each once", hub.helloAt[1].Sub(killAt).Round(time.Millisecond), len(hub.ids))
	}
}

// testBoardOldBinary: a binary that knows only schema version 1 started
// against a database at version 2 refuses every request with 503, and its
// /status says why; the database is left as it was.
func testBoardOldBinary(t *testing.T, pg *pgtest.Server) {
	dsn, keys := pg.NewDB(t), boardKeys(t)
	startBoard(t, "new", dsn, keys, 200)
	old := startBoard(t, "old", dsn, keys, 503, "--known-schema", "1")
	// 503 at first says "connecting" or "migrating"; then the refusal.
	var resp *http.Response
	var body []byte
	var st appkit.StatusBody
	untilTrue(10*time.Second, func() bool {
		r, err := http.Get("http://" + old.addr + "/status")
		if err != nil {
			return false
		}
		resp = r
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		return json.Unmarshal(body, &st) == nil && strings.Contains(st.Reason, "schema is at version")
	})
	if resp.StatusCode != 503 || st.Ready || !strings.Contains(st.Reason, "schema is at version 2") ||
		!strings.Contains(st.Reason, "up to 1") || st.Version == "" {
		t.Errorf("old binary /status: %d %s; want 503 naming versions 2 and 1", resp.StatusCode, body)
	}
	for _, path := range []string{"/login", "/api/board", "/"} {
		resp, err := http.Get("http://" + old.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), "schema") {
			t.Errorf("old binary GET %s: %d %q, want 503 with the reason", path, resp.StatusCode, b)
		}
	}
	var v, rows int
	if err := pgConn(t, dsn).QueryRow(context.Background(), `SELECT MAX(version), COUNT(*) FROM appkit_schema`).Scan(&v, &rows); err != nil || v != 2 || rows != 2 {
		t.Errorf("schema after the old binary: version %d, %d rows (%v); want 2, 2", v, rows, err)
	}
}

// testBoardConcurrentStart: three instances started at once on an empty
// database all become ready; the migrations ran once, by one of them.
func testBoardConcurrentStart(t *testing.T, pg *pgtest.Server) {
	dsn, keys := pg.NewDB(t), boardKeys(t)
	var boards []*app
	for i := range 3 {
		addr := freePort(t)
		args := []string{"taskboard", "--name", fmt.Sprint("b", i), "--addr", addr, "--db", dsn, "--session-keys", keys, "--seed", "alice:" + boardPassword}
		boards = append(boards, &app{proc: start(t, fmt.Sprint("app b", i), args...), addr: addr})
	}
	for _, b := range boards {
		waitHTTP(t, "http://"+b.addr+"/status", 200)
	}
	applied := 0
	for _, b := range boards {
		applied += strings.Count(b.out.String(), `msg="migration applied"`)
	}
	if applied != 2 {
		t.Errorf("%d migrations applied between three instances, want 2 (each once)", applied)
	}
	var rows, by, users int
	db := pgConn(t, dsn)
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*), COUNT(DISTINCT applied_by) FROM appkit_schema`).Scan(&rows, &by); err != nil || rows != 2 || by != 1 {
		t.Errorf("appkit_schema: %d rows by %d instances (%v), want 2 by 1", rows, by, err)
	}
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM users`).Scan(&users); err != nil || users != 1 {
		t.Errorf("%d users after three seeding instances (%v), want 1", users, err)
	}
}

// testBoardBrowser: in headless Chromium, log in, kill the master, add a
// task from the page, and see it (and one added by another user) appear
// with no reload and no new login.
func testBoardBrowser(t *testing.T, pg *pgtest.Server) {
	dsn, keys := pg.NewDB(t), boardKeys(t)
	master := startBoard(t, "master", dsn, keys, 200)
	failover := startBoard(t, "failover", dsn, keys, 200)
	g := startGateway(t, gwConfig(master, failover)+boardHealth)
	g.waitActive(t, "master", 5*time.Second)
	base := "http://" + g.addr
	b := newBrowser(t)

	b.do(10*time.Second, "open the board", chromedp.Navigate(base+"/"))
	b.until(5*time.Second, "the login page", `location.pathname === "/login" && !!document.getElementById("name")`)
	b.do(5*time.Second, "log in",
		chromedp.SendKeys(chromedp.CSS("#name"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), boardPassword),
		chromedp.Click(chromedp.CSS("#login")))
	b.until(5*time.Second, "the board, live, from the master", `location.pathname === "/" &&
		document.getElementById("conn").dataset.state === "open" && document.getElementById("server").textContent === "master"`)
	// A marker that a reload would erase.
	b.do(2*time.Second, "mark the page", chromedp.Evaluate[chromedp.Void](`window.__noReload = 42`))
	b.do(5*time.Second, "add a task on the master",
		chromedp.SendKeys(chromedp.CSS("#title"), "written on the master"),
		chromedp.Click(chromedp.CSS("#add")))
	b.until(3*time.Second, "the first task shown", `[...document.querySelectorAll('section[data-status="todo"] li .title')].some(e => e.textContent === "written on the master")`)

	killAt := time.Now()
	master.kill()
	b.until(5*time.Second, "the page reconnected to the failover", `document.getElementById("conn").dataset.state === "open" &&
		document.getElementById("server").textContent === "failover"`)
	t.Logf("the page was live on the failover %v after the master's SIGKILL", (time.Since(killAt)).Round(time.Millisecond))
	b.do(5*time.Second, "add a task after the kill",
		chromedp.SendKeys(chromedp.CSS("#title"), "written after the kill"),
		chromedp.Click(chromedp.CSS("#add")))
	b.until(5*time.Second, "the new task shown", `[...document.querySelectorAll('section[data-status="todo"] li .title')].some(e => e.textContent === "written after the kill")`)

	// Another user's write arrives over the websocket.
	bob := loginBoard(t, base, "bob")
	if status, _, err := bob.post("/api/tasks", "bob-1", `{"title": "from bob"}`); status != 201 {
		t.Fatalf("bob's write: %d %v", status, err)
	}
	b.until(3*time.Second, "bob's task shown live", `[...document.querySelectorAll('li .title')].some(e => e.textContent === "from bob")`)
	b.do(5*time.Second, "complete it", chromedp.Click(chromedp.CSS(`li[data-id] button[data-action="complete"]`)))
	b.until(3*time.Second, "a task in the done column", `document.querySelectorAll('section[data-status="done"] li').length === 1`)

	b.until(time.Second, "no reload, no login", `window.__noReload === 42 && location.pathname === "/" && document.getElementById("message").hidden`)
	b.screenshot(filepath.Join(artifactDir(t), "taskboard.png"))
	b.checkConsole()
}

// TestTaskboardDemo: `tandem demo` starts the gateway and two task boards,
// prints how to log in, and the printed login works through the gateway,
// also after the master is killed.
func TestTaskboardDemo(t *testing.T) {
	listen, admin, master, failover := freePort(t), freePort(t), freePort(t), freePort(t)
	d := start(t, "demo", "demo", "--listen", listen, "--admin", admin, "--master", master, "--failover", failover, "--restart-after", "1m")
	// SIGTERM, not the harness's SIGKILL: the demo stops its instances.
	t.Cleanup(func() {
		d.signal(syscall.SIGTERM)
		d.wait(15 * time.Second)
	})
	if !untilTrue(20*time.Second, func() bool { return strings.Contains(d.out.String(), "log in as alice or bob, password") }) {
		t.Fatal("the demo did not print how to log in within 20s")
	}
	m := regexp.MustCompile(`password (\S+)\)`).FindStringSubmatch(d.out.String())
	if m == nil || m[1] != demoPassword {
		t.Fatalf("the demo's login line: %q", m)
	}
	u := loginBoardWith(t, "http://"+listen, "alice", demoPassword)
	if status, by, err := u.post("/api/tasks", "demo-1", `{"title": "demo"}`); status != 201 || by != "master" {
		t.Fatalf("a write through the demo: %d by %q (%v), want 201 by the master", status, by, err)
	}
	// The printed commands work from where the user stands: the status
	// command as printed, the kill command on the master's PID only.
	st := regexp.MustCompile(`(?m)^\s+(\S.*) status --admin (\S+)$`).FindStringSubmatch(d.out.String())
	if st == nil || st[1] != bin || st[2] != admin {
		t.Fatalf("the demo's status command %q, want %s status --admin %s:\n%s", st, bin, admin, d.out.String())
	}
	if out, err := exec.Command(st[1], "status", "--admin", st[2]).CombinedOutput(); err != nil || !strings.Contains(string(out), "demo: active master") {
		t.Errorf("the printed status command: %v\n%s", err, out)
	}
	k := regexp.MustCompile(`(?m)^\s+kill -KILL (\d+)$`).FindStringSubmatch(d.out.String())
	if k == nil {
		t.Fatalf("the demo does not print the kill command with the master's PID:\n%s", d.out.String())
	}
	want, err := exec.Command("pgrep", "-f", "taskboard --name master --addr "+master).Output()
	if err != nil || strings.TrimSpace(string(want)) != k[1] {
		t.Fatalf("the printed PID %s, the master's process %q (%v)", k[1], want, err)
	}
	if err := exec.Command("kill", "-KILL", k[1]).Run(); err != nil {
		t.Fatalf("the printed kill command: %v", err)
	}
	if !untilTrue(5*time.Second, func() bool { return u.board().servedBy == "failover" }) {
		t.Fatal("the demo did not switch to the failover within 5s of killing the master")
	}
	if b := u.board(); b.User != "alice" || len(b.Tasks) != 1 {
		t.Errorf("after the kill: %+v, want alice's board with the task", b)
	}
}

// TestDemoPortTaken: with a port taken the demo stops before it starts
// anything, and says which flag picks another.
func TestDemoPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	d := start(t, "demo", "demo", "--listen", taken.Addr().String(), "--admin", freePort(t), "--master", freePort(t), "--failover", freePort(t))
	if code := d.wait(5 * time.Second); code == 0 {
		t.Errorf("demo with its port taken: exit 0")
	}
	out := d.out.String()
	if want := taken.Addr().String() + " is not free"; !strings.Contains(out, want) || !strings.Contains(out, "pick another with --listen HOST:PORT") {
		t.Errorf("demo output lacks %q and the flag to use:\n%s", want, out)
	}
	if strings.Contains(out, "demo instance started") {
		t.Errorf("the demo started its instances before checking its ports:\n%s", out)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
