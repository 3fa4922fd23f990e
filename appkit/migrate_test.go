package appkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// testMigrations: 1 creates tables, 2 adds a column and writes a row into
// runs, so a migration applied twice shows as two rows.
var testMigrations = fstest.MapFS{
	"0001_init.sql":          {Data: []byte("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\nCREATE TABLE runs (what TEXT NOT NULL);\nINSERT INTO runs (what) VALUES ('1');")},
	"0002_done.sql":          {Data: []byte("ALTER TABLE notes ADD COLUMN done BOOLEAN NOT NULL DEFAULT false;\nINSERT INTO runs (what) VALUES ('2');")},
	"0002_done.sqlite.sql":   {Data: []byte("ALTER TABLE notes ADD COLUMN done INTEGER NOT NULL DEFAULT 0;\nINSERT INTO runs (what) VALUES ('2');")},
	"README.md":              {Data: []byte("not a migration")},
	"0003_later.postgres.sq": {Data: []byte("ignored: not .sql")},
}

func loadTestMigrations(t *testing.T, d Dialect) []Migration {
	t.Helper()
	ms, err := LoadMigrations(testMigrations, d)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestLoadMigrations: numbering, dialect overrides, refusals.
func TestLoadMigrations(t *testing.T) {
	for _, d := range []Dialect{Postgres, SQLite} {
		ms := loadTestMigrations(t, d)
		if len(ms) != 2 || ms[0].Version != 1 || ms[1].Version != 2 || ms[1].Name != "done" {
			t.Fatalf("%s: %+v", d, ms)
		}
		if want := map[Dialect]string{Postgres: "BOOLEAN", SQLite: "INTEGER"}[d]; !strings.Contains(ms[1].SQL, want) {
			t.Errorf("%s: migration 2 is %q, want the %s variant", d, ms[1].SQL, d)
		}
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"0001_a.sql": {}, "0003_c.sql": {}},
		"duplicate": {"0001_a.sql": {}, "0001_b.sql": {}},
	} {
		if _, err := LoadMigrations(fsys, Postgres); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
}

func countRuns(t *testing.T, db *DB) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(testCtx(t), `SELECT what, COUNT(*) FROM runs GROUP BY what`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var what string
		var n int
		if err := rows.Scan(&what, &n); err != nil {
			t.Fatal(err)
		}
		out[what] = n
	}
	return out
}

// TestMigrate: pending migrations are applied and recorded, a second run
// applies nothing, and readiness follows.
func TestMigrate(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		ctx := testCtx(t)
		db := openRaw(t, dsnFor(t, d))
		st := NewStatus("a", "1.0")
		m := &Migrator{DB: db, Migrations: loadTestMigrations(t, d), Instance: "a", Status: st, Known: 1, Log: testLog(t)}
		if n, err := m.Migrate(ctx); err != nil || n != 1 {
			t.Fatalf("first start (knows 1): applied %d, %v; want 1", n, err)
		}
		m.Known = 0 // all
		if n, err := m.Migrate(ctx); err != nil || n != 1 {
			t.Fatalf("upgrade: applied %d, %v; want 1", n, err)
		}
		if n, err := m.Migrate(ctx); err != nil || n != 0 {
			t.Fatalf("restart: applied %d, %v; want 0", n, err)
		}
		if v, err := m.Version(ctx); err != nil || v != 2 {
			t.Errorf("schema version %d (%v), want 2", v, err)
		}
		if ok, why := st.Serving(); !ok {
			t.Errorf("not serving after migrations: %s", why)
		}
		if got := countRuns(t, db); got["1"] != 1 || got["2"] != 1 {
			t.Errorf("migration runs %v, want each once", got)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO notes (id, body, done) VALUES (1, 'x', $1)`, true); err != nil {
			t.Errorf("the migrated schema: %v", err)
		}
	})
}

// TestMigrateConcurrent: instances starting at once (separate connection
// pools, as separate processes have) migrate once between them.
func TestMigrateConcurrent(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		ctx := testCtx(t)
		dsn := dsnFor(t, d)
		const n = 6
		var dbs []*DB
		for range n {
			dbs = append(dbs, openRaw(t, dsn))
		}
		var wg sync.WaitGroup
		applied := make([]int, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				m := &Migrator{DB: dbs[i], Migrations: loadTestMigrations(t, d), Instance: fmt.Sprint("instance-", i), Log: testLog(t)}
				applied[i], errs[i] = m.Migrate(ctx)
			})
		}
		close(start)
		wg.Wait()
		total := 0
		for i := range n {
			if errs[i] != nil {
				t.Errorf("instance %d: %v", i, errs[i])
			}
			total += applied[i]
		}
		if total != 2 {
			t.Errorf("%d migrations applied between %d instances (%v), want 2", total, n, applied)
		}
		if got := countRuns(t, dbs[0]); got["1"] != 1 || got["2"] != 1 {
			t.Errorf("migration runs %v, want each once", got)
		}
		var by int
		if err := dbs[0].QueryRowContext(ctx, `SELECT COUNT(DISTINCT applied_by) FROM appkit_schema`).Scan(&by); err != nil || by != 1 {
			t.Errorf("migrations applied by %d instances (%v), want 1", by, err)
		}
	})
}

// TestOldBinary: a binary that knows fewer migrations than the database
// has refuses to serve, and /status says why with 503; the guard also
// catches a newer version migrating while an old one runs.
func TestOldBinary(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		ctx := testCtx(t)
		dsn := dsnFor(t, d)
		newer := &Migrator{DB: openRaw(t, dsn), Migrations: loadTestMigrations(t, d), Instance: "new", Log: testLog(t)}
		if _, err := newer.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		st := NewStatus("old", "0.9")
		old := &Migrator{DB: openRaw(t, dsn), Migrations: loadTestMigrations(t, d), Known: 1, Instance: "old", Status: st, Log: testLog(t)}
		_, err := old.Migrate(ctx)
		var se *SchemaError
		if !errors.As(err, &se) || !errors.Is(err, ErrSchemaTooNew) || se.DB != 2 || se.Known != 1 {
			t.Fatalf("old binary: %v, want a SchemaError 2 > 1", err)
		}
		checkRefusing(t, st, "schema is at version 2")
		if got := countRuns(t, newer.DB); got["2"] != 1 {
			t.Errorf("the old binary touched the schema: runs %v", got)
		}
	})
}

func checkRefusing(t *testing.T, st *Status, want string) {
	t.Helper()
	w := httptest.NewRecorder()
	st.ServeHTTP(w, httptest.NewRequest("GET", "/status", nil))
	var body StatusBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 503 || body.Ready || !strings.Contains(body.Reason, want) || !strings.Contains(w.Body.String(), `"version"`) {
		t.Errorf("/status: %d %s; want 503, not ready, reason containing %q, and a version", w.Code, w.Body.String(), want)
	}
	// Every other path is refused with the reason too.
	w = httptest.NewRecorder()
	st.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }), "/status").ServeHTTP(w, httptest.NewRequest("POST", "/tasks", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), want) {
		t.Errorf("POST /tasks while refusing: %d %s", w.Code, w.Body.String())
	}
}

// TestSchemaGuard: an instance running when a newer version migrates the
// database stops serving within the guard's period.
func TestSchemaGuard(t *testing.T) {
	ctx := testCtx(t)
	dsn := dsnFor(t, Postgres)
	st := NewStatus("old", "0.9")
	old := &Migrator{DB: openRaw(t, dsn), Migrations: loadTestMigrations(t, Postgres), Known: 1, Instance: "old", Status: st, Every: 50 * time.Millisecond, Log: testLog(t)}
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, why := st.Serving(); !ok {
		t.Fatalf("not serving: %s", why)
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- old.Run(gctx) }()
	defer func() { cancel(); <-done }()
	newer := &Migrator{DB: openRaw(t, dsn), Migrations: loadTestMigrations(t, Postgres), Instance: "new", Log: testLog(t)}
	if _, err := newer.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for ok, _ := st.Serving(); ok; ok, _ = st.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("the old instance still serves 2s after a newer one migrated")
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkRefusing(t, st, "schema is at version 2")
}

// TestNotReadyWhileMigrating: readiness is false while the lock is held
// by another instance.
func TestNotReadyWhileMigrating(t *testing.T) {
	ctx := testCtx(t)
	dsn := dsnFor(t, Postgres)
	holder := openRaw(t, dsn)
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(advisoryLockKey)); err != nil {
		t.Fatal(err)
	}
	st := NewStatus("b", "1.0")
	m := &Migrator{DB: openRaw(t, dsn), Migrations: loadTestMigrations(t, Postgres), Instance: "b", Status: st, Log: testLog(t)}
	done := make(chan error, 1)
	go func() { _, err := m.Migrate(ctx); done <- err }()
	time.Sleep(200 * time.Millisecond)
	w := httptest.NewRecorder()
	st.ServeHTTP(w, httptest.NewRequest("GET", "/status", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), "migrating") {
		t.Errorf("/status while waiting for the migration lock: %d %s, want 503 migrating", w.Code, w.Body.String())
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(advisoryLockKey)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok, why := st.Serving(); !ok {
		t.Errorf("not ready after migrating: %s", why)
	}
}
