// Package taskboard is the reference stateful app on appkit: a small team
// task board with logins, live updates over a websocket, an in-memory cache
// of the board and a background job, run as a master and a failover behind
// tandem. A switch between them logs nobody out (sealed session cookies
// with shared keys), loses no acknowledged write and applies none twice
// (the database, Idempotency-Key), and the page never reloads (the hub's
// client resumes from the last event id).
package taskboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/appkit"
)

// Version is reported by /status.
const Version = "1.1.0"

//go:embed migrations/*.sql
var migrationFiles embed.FS

//go:embed web
var webFiles embed.FS

// Migrations returns the app's migrations for dialect d.
func Migrations(d appkit.Dialect) ([]appkit.Migration, error) {
	sub, _ := fs.Sub(migrationFiles, "migrations")
	return appkit.LoadMigrations(sub, d)
}

// Config is one instance's configuration.
type Config struct {
	// Name tells the instances apart (shown on the page and in /status).
	Name string
	// Addr is the listen address.
	Addr string
	// DSN is a postgres:// URL or an SQLite file path.
	DSN string
	// Keys are the session keys, shared by both instances.
	Keys appkit.Keys
	// Seed creates these users (name -> password) if they do not exist.
	Seed map[string]string
	// KnownSchema, when positive, makes the binary know only migrations up
	// to that version: an "old binary", for tests and demos.
	KnownSchema int
	// Fence refuses writes that carry an older gateway epoch than the
	// newest seen; FenceResetAfter accepts a restarted gateway's lower
	// epoch after the newer one went unseen that long (0: never).
	Fence           bool
	FenceResetAfter time.Duration
	// Standalone makes the instance active without a gateway in front
	// (the background job runs only on the active instance).
	Standalone bool
	// JobEvery is the background job's period (default 2s).
	JobEvery time.Duration
	// RefreshEvery reloads the cache from the database (default 30s).
	RefreshEvery time.Duration
	// Iterations is the PBKDF2 iteration count for new passwords
	// (default DefaultIterations).
	Iterations int
	Log        *slog.Logger
}

// App is one running instance.
type App struct {
	cfg      Config
	log      *slog.Logger
	db       *appkit.DB
	status   *appkit.Status
	epochs   *appkit.Epochs
	sessions *appkit.Sessions
	hub      *appkit.Hub
	migrator *appkit.Migrator
	board    board
}

// New checks the configuration; Run does the rest.
func New(cfg Config) (*App, error) {
	if cfg.Name == "" {
		cfg.Name = "taskboard"
	}
	if cfg.Addr == "" {
		return nil, errors.New("taskboard: no listen address")
	}
	if cfg.DSN == "" {
		return nil, errors.New("taskboard: no database (a postgres:// URL or an SQLite file)")
	}
	if cfg.Keys == nil || cfg.Keys.Ring() == nil {
		return nil, errors.New("taskboard: no session keys")
	}
	if cfg.JobEvery <= 0 {
		cfg.JobEvery = 2 * time.Second
	}
	if cfg.RefreshEvery <= 0 {
		cfg.RefreshEvery = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	log := cfg.Log.With("instance", cfg.Name)
	a := &App{cfg: cfg, log: log}
	a.status = appkit.NewStatus(cfg.Name, Version)
	a.epochs = &appkit.Epochs{Instance: cfg.Name, Standalone: cfg.Standalone, ResetAfter: cfg.FenceResetAfter, Log: log}
	a.status.Epochs = a.epochs
	a.sessions = &appkit.Sessions{Keys: cfg.Keys, Name: "taskboard_session"}
	return a, nil
}

// Run opens the database, migrates it, and serves until ctx ends. A
// binary older than the database's schema keeps running, refusing every
// request with 503 and saying why on /status, so that an operator sees the
// reason instead of a crash loop.
func (a *App) Run(ctx context.Context) error {
	// Listen first: /status answers (503, "starting", then "migrating")
	// while the database is opened and migrated.
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("taskboard: %w", err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.log.Info("listening", "address", ln.Addr().String(), "version", Version)

	err = a.start(ctx)
	if err == nil {
		err = a.runParts(ctx)
	} else if errors.Is(err, appkit.ErrSchemaTooNew) {
		// Keep answering /status with the reason until stopped; the
		// guard lifts the refusal if the schema is rolled back.
		a.log.Error("this binary is older than the database schema; refusing to serve", "error", err)
		err = a.runGuard(ctx)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if a.db != nil {
		a.db.Close()
	}
	if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("taskboard: %w", e)
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // stopped while starting: not a failure
	}
	return err
}

// start opens and migrates the database, seeds users and loads the cache.
func (a *App) start(ctx context.Context) error {
	a.status.SetNotReady("connecting to the database")
	var err error
	for {
		// The database may come up after the app (Kubernetes starts both).
		if a.db, err = appkit.Open(ctx, a.cfg.DSN); err == nil {
			break
		}
		a.log.Warn("database not reachable; retrying", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	a.epochs.DB = a.db
	ms, err := Migrations(a.db.Dialect)
	if err != nil {
		return fmt.Errorf("taskboard: %w", err)
	}
	a.migrator = &appkit.Migrator{DB: a.db, Migrations: ms, Known: a.cfg.KnownSchema, Instance: a.cfg.Name, Status: a.status, Log: a.log}
	a.status.SetNotReady("migrating the database schema")
	n, err := a.migrator.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("taskboard: %w", err)
	}
	v, _ := a.migrator.Version(ctx)
	a.log.Info("database ready", "dialect", a.db.Dialect, "schema", v, "applied", n)
	a.status.SetNotReady("loading")
	for name, pw := range a.cfg.Seed {
		if _, err := createUser(ctx, a.db.DB, name, pw, a.cfg.Iterations); err != nil && !errors.Is(err, errUserExists) {
			return fmt.Errorf("taskboard: seed user %s: %w", name, err)
		}
	}
	a.hub = &appkit.Hub{DB: a.db, Name: a.cfg.Name, Epochs: a.epochs, Log: a.log,
		Authorize: func(r *http.Request) bool { return appkit.SessionFrom(r.Context()).LoggedIn() }}
	a.hub.Subscribe(a.board.event)
	if err := a.board.load(ctx, a.db); err != nil {
		return fmt.Errorf("taskboard: %w", err)
	}
	a.status.SetReady()
	return nil
}

func (a *App) runGuard(ctx context.Context) error {
	if a.migrator == nil {
		<-ctx.Done()
		return nil
	}
	return a.migrator.Run(ctx)
}

// runParts runs the long-lived parts until ctx ends or one fails.
func (a *App) runParts(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := map[string]func(context.Context) error{
		"hub":          a.hub.Run,
		"epochs":       a.epochs.Run,
		"schema guard": a.migrator.Run,
		"cache":        a.refreshCache,
		"job":          a.runJob,
	}
	if kf, ok := a.cfg.Keys.(*appkit.KeyFile); ok {
		parts["session keys"] = kf.Run
	}
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for name, run := range parts {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("taskboard: %s: %w", name, err)
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (a *App) refreshCache(ctx context.Context) error {
	t := time.NewTicker(a.cfg.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := a.board.load(ctx, a.db); err != nil && ctx.Err() == nil {
			a.log.Warn("cache not refreshed", "error", err)
		}
	}
}

// handler is the app's routes:
//
//	/status        health and role (no session, no guard)
//	everything else: refused while not ready, fenced, with a session
func (a *App) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /signup", a.signup)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /api/board", a.apiBoard)
	mux.HandleFunc("POST /api/tasks", a.createTask)
	mux.HandleFunc("POST /api/tasks/{id}/move", a.moveTask)
	mux.HandleFunc("POST /api/tasks/{id}/complete", a.completeTask)
	mux.HandleFunc("DELETE /api/tasks/{id}", a.deleteTask)
	mux.HandleFunc("GET /websocket", func(w http.ResponseWriter, r *http.Request) { a.hub.ServeHTTP(w, r) })
	static, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /appkit/hub.js", appkit.ClientJS())

	var app http.Handler = a.sessions.Middleware(mux)
	if a.cfg.Fence {
		app = a.epochs.Fence(app)
	} else {
		app = a.epochs.Middleware(app)
	}
	app = a.status.Guard(app)

	root := http.NewServeMux()
	root.Handle("GET /status", a.status)
	root.Handle("/", app)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", a.cfg.Name)
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			w.Header().Set("Cache-Control", "no-store")
		}
		root.ServeHTTP(w, r)
	})
}
