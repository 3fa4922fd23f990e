package taskboard

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/appkit"
)

var pages = template.Must(template.ParseFS(webFiles, "web/*.html"))

type pageData struct {
	Server string
	User   string
	CSRF   string
	Error  string
	Name   string
}

func (a *App) render(w http.ResponseWriter, status int, name string, d pageData) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, d); err != nil {
		a.log.Error("render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (a *App) page(w http.ResponseWriter, r *http.Request) {
	s := appkit.SessionFrom(r.Context())
	if !s.LoggedIn() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	a.render(w, 200, "board.html", pageData{Server: a.cfg.Name, User: s.User, CSRF: s.CSRF})
}

func (a *App) loginPage(w http.ResponseWriter, r *http.Request) {
	s := appkit.SessionFrom(r.Context())
	if s.LoggedIn() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	a.render(w, 200, "login.html", pageData{Server: a.cfg.Name, CSRF: s.CSRF})
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	name, pw := strings.ToLower(strings.TrimSpace(r.PostFormValue("name"))), r.PostFormValue("password")
	id, ok, err := authenticate(r.Context(), a.db.DB, name, pw)
	if err != nil {
		a.log.Error("login", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if !ok {
		a.render(w, http.StatusUnauthorized, "login.html", pageData{Server: a.cfg.Name, CSRF: appkit.SessionFrom(r.Context()).CSRF,
			Error: "Wrong name or password.", Name: name})
		return
	}
	a.sessions.Login(w, r, id, name)
	a.log.Info("login", "user", name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *App) signup(w http.ResponseWriter, r *http.Request) {
	name, pw := strings.ToLower(strings.TrimSpace(r.PostFormValue("name"))), r.PostFormValue("password")
	fail := func(msg string) {
		a.render(w, http.StatusBadRequest, "login.html", pageData{Server: a.cfg.Name, CSRF: appkit.SessionFrom(r.Context()).CSRF, Error: msg, Name: name})
	}
	if !validName(name) {
		fail("A name is 2 to 32 of a-z, 0-9, '-', '_' and '.'.")
		return
	}
	if len(pw) < 8 || len(pw) > 200 {
		fail("A password is 8 to 200 characters.")
		return
	}
	id, err := createUser(r.Context(), a.db.DB, name, pw, a.cfg.Iterations)
	if errors.Is(err, errUserExists) {
		fail("That name is taken.")
		return
	}
	if err != nil {
		a.log.Error("signup", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.sessions.Login(w, r, id, name)
	a.log.Info("signup", "user", name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	a.sessions.Logout(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// requireLogin answers 401 (JSON) for an API call without a logged-in
// session and returns the session otherwise.
func requireLogin(w http.ResponseWriter, r *http.Request) *appkit.Session {
	s := appkit.SessionFrom(r.Context())
	if !s.LoggedIn() {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in first"})
		return nil
	}
	return s
}

// BoardView is GET /api/board.
type BoardView struct {
	User    string `json:"user"`
	CSRF    string `json:"csrf"`
	Server  string `json:"server"`
	EventID int64  `json:"eventId"` // resume the hub from here
	Tasks   []Task `json:"tasks"`
}

func (a *App) apiBoard(w http.ResponseWriter, r *http.Request) {
	s := requireLogin(w, r)
	if s == nil {
		return
	}
	a.catchUp(r.Context())
	tasks, eventID, _ := a.board.snapshot()
	writeJSON(w, 200, BoardView{User: s.User, CSRF: s.CSRF, Server: a.cfg.Name, EventID: eventID, Tasks: tasks})
}

// catchUp brings the cache up to the database's newest event before it
// is read: one single-row query when it is current, the missing events
// when the other instance wrote since the hub last polled (just after a
// switch, a write the old master committed a moment ago).
func (a *App) catchUp(ctx context.Context) {
	have := a.board.lastEvent()
	last, err := a.hub.LastID(ctx, a.db)
	if err != nil || last <= have {
		return
	}
	evs, covered, err := a.hub.Since(ctx, have, 1000)
	if err != nil {
		return
	}
	if !covered || int64(len(evs)) < last-have {
		if err := a.board.load(ctx, a.db); err != nil {
			a.log.Warn("cache not reloaded", "error", err)
		}
		return
	}
	for _, ev := range evs {
		a.board.event(ev)
	}
}

// errResponse is a stored answer that refuses the request.
func errResponse(status int, msg string) appkit.Response {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return appkit.Response{Status: status, ContentType: "application/json", Body: append(b, '\n')}
}

func taskResponse(status int, t Task) appkit.Response {
	b, _ := json.Marshal(t)
	return appkit.Response{Status: status, ContentType: "application/json", Body: append(b, '\n')}
}

// write runs a change in one transaction: the fence check, the change, its
// hub event, and (with an Idempotency-Key) the key and the answer, so that
// a replay of the request on either instance gets the same answer and
// changes nothing. Only after the commit is the answer sent.
func (a *App) write(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, tx *sql.Tx, s *appkit.Session, body []byte) (appkit.Response, *Task, error)) {
	s := requireLogin(w, r)
	if s == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	ctx := r.Context()
	var changed *Task
	fn := func(tx *sql.Tx) (appkit.Response, error) {
		if err := a.epochs.FenceTx(ctx, tx); err != nil {
			return appkit.Response{}, err
		}
		resp, t, err := change(ctx, tx, s, body)
		if err != nil {
			return appkit.Response{}, err
		}
		if t != nil {
			if _, err := a.hub.Publish(ctx, tx, "task", t); err != nil {
				return appkit.Response{}, err
			}
			changed = t
		}
		return resp, nil
	}
	var resp appkit.Response
	replayed := false
	if key := r.Header.Get(appkit.IdempotencyHeader); key != "" {
		if !appkit.ValidIdempotencyKey(key) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad Idempotency-Key: 1 to 200 printable ASCII characters"})
			return
		}
		fp := append([]byte(r.Method+" "+r.URL.Path+"\n"), body...)
		resp, replayed, err = a.db.Idempotent(ctx, fmt.Sprintf("user:%d", s.UserID), key, fp, fn)
	} else {
		err = a.db.InTx(ctx, func(tx *sql.Tx) error {
			var e error
			resp, e = fn(tx)
			return e
		})
	}
	switch {
	case errors.Is(err, appkit.ErrFenced):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	case errors.Is(err, appkit.ErrIdempotencyMismatch):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "this Idempotency-Key was used for another request"})
		return
	case err != nil:
		if ctx.Err() == nil {
			a.log.Error("write failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the write was not applied; try again"})
		return
	}
	if changed != nil {
		a.board.upsert(*changed)
		a.hub.Notify()
	}
	if replayed {
		a.log.Info("idempotent replay", "method", r.Method, "path", r.URL.Path, "key", r.Header.Get(appkit.IdempotencyHeader))
	}
	resp.Write(w, replayed)
}

type createReq struct {
	Title        string `json:"title"`
	DueInMinutes *int   `json:"dueInMinutes,omitempty"`
}

func (a *App) createTask(w http.ResponseWriter, r *http.Request) {
	a.write(w, r, func(ctx context.Context, tx *sql.Tx, s *appkit.Session, body []byte) (appkit.Response, *Task, error) {
		var req createReq
		if err := json.Unmarshal(body, &req); err != nil {
			return errResponse(400, "want JSON {\"title\": ...}"), nil, nil
		}
		req.Title = strings.TrimSpace(req.Title)
		if req.Title == "" || len(req.Title) > 200 {
			return errResponse(400, "a title is 1 to 200 characters"), nil, nil
		}
		now := time.Now().UnixMilli()
		var due any
		if req.DueInMinutes != nil {
			if *req.DueInMinutes < 0 || *req.DueInMinutes > 60*24*365 {
				return errResponse(400, "dueInMinutes is 0 to a year"), nil, nil
			}
			due = now + int64(*req.DueInMinutes)*60_000
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO tasks (title, status, created_by, created_at_ms, updated_at_ms, due_at_ms)
			VALUES ($1, 'todo', $2, $3, $3, $4) RETURNING id`, req.Title, s.UserID, now, due).Scan(&id); err != nil {
			return appkit.Response{}, nil, fmt.Errorf("create task: %w", err)
		}
		t, err := loadTask(ctx, tx, id)
		if err != nil {
			return appkit.Response{}, nil, err
		}
		return taskResponse(http.StatusCreated, t), &t, nil
	})
}

func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// setStatus moves task id to status; moving it to where it is changes
// nothing and publishes nothing.
func setStatus(ctx context.Context, tx *sql.Tx, r *http.Request, status string) (appkit.Response, *Task, error) {
	id, ok := pathID(r)
	if !ok {
		return errResponse(404, "no such task"), nil, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE tasks SET status = $1, updated_at_ms = $2, version = version + 1 WHERE id = $3 AND status <> $1`,
		status, time.Now().UnixMilli(), id)
	if err != nil {
		return appkit.Response{}, nil, fmt.Errorf("move task %d: %w", id, err)
	}
	t, err := loadTask(ctx, tx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return errResponse(404, "no such task"), nil, nil
	}
	if err != nil {
		return appkit.Response{}, nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return taskResponse(200, t), nil, nil
	}
	return taskResponse(200, t), &t, nil
}

func (a *App) moveTask(w http.ResponseWriter, r *http.Request) {
	a.write(w, r, func(ctx context.Context, tx *sql.Tx, s *appkit.Session, body []byte) (appkit.Response, *Task, error) {
		var req struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &req); err != nil || !validStatus(req.Status) {
			return errResponse(400, "want JSON {\"status\": \"todo\"|\"doing\"|\"done\"}"), nil, nil
		}
		return setStatus(ctx, tx, r, req.Status)
	})
}

func (a *App) completeTask(w http.ResponseWriter, r *http.Request) {
	a.write(w, r, func(ctx context.Context, tx *sql.Tx, s *appkit.Session, body []byte) (appkit.Response, *Task, error) {
		return setStatus(ctx, tx, r, "done")
	})
}

func (a *App) deleteTask(w http.ResponseWriter, r *http.Request) {
	a.write(w, r, func(ctx context.Context, tx *sql.Tx, s *appkit.Session, body []byte) (appkit.Response, *Task, error) {
		id, ok := pathID(r)
		if !ok {
			return errResponse(404, "no such task"), nil, nil
		}
		t, err := loadTask(ctx, tx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return errResponse(404, "no such task"), nil, nil
		}
		if err != nil {
			return appkit.Response{}, nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE id = $1`, id); err != nil {
			return appkit.Response{}, nil, fmt.Errorf("delete task %d: %w", id, err)
		}
		t.Deleted, t.Version = true, t.Version+1
		return taskResponse(200, t), &t, nil
	})
}

// runJob is the background job: on the active instance only, it marks
// tasks past their due date overdue (and tells the pages), and forgets
// idempotency keys older than a day. Marking is idempotent, so the moment
// around a switch when both instances think they are active does no harm.
func (a *App) runJob(ctx context.Context) error {
	t := time.NewTicker(a.cfg.JobEvery)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !a.epochs.Active() {
			continue
		}
		n, err := a.markOverdue(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("overdue job failed", "error", err)
			}
			continue
		}
		if n > 0 {
			a.log.Info("tasks marked overdue", "count", n)
			a.hub.Notify()
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if _, err := a.db.PruneIdempotency(ctx, 24*time.Hour); err != nil {
				a.log.Warn("idempotency keys not pruned", "error", err)
			}
		}
	}
}

func (a *App) markOverdue(ctx context.Context) (int, error) {
	var marked []Task
	err := a.db.InTx(ctx, func(tx *sql.Tx) error {
		marked = nil
		now := time.Now().UnixMilli()
		rows, err := tx.QueryContext(ctx, `SELECT id FROM tasks WHERE overdue = 0 AND due_at_ms IS NOT NULL AND due_at_ms < $1 AND status <> 'done' ORDER BY id LIMIT 100`, now)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `UPDATE tasks SET overdue = 1, version = version + 1, updated_at_ms = $1 WHERE id = $2 AND overdue = 0`, now, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // the other instance was quicker
			}
			t, err := loadTask(ctx, tx, id)
			if err != nil {
				return err
			}
			if _, err := a.hub.Publish(ctx, tx, "task", t); err != nil {
				return err
			}
			marked = append(marked, t)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("mark overdue: %w", err)
	}
	for _, t := range marked {
		a.board.upsert(t)
	}
	return len(marked), nil
}
