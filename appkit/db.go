package appkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // the embedded default: pure Go, nothing to install
)

// Dialect says which database a DB talks to. The kit's SQL is written for
// both; the few differences (locks, upserts) are switched on it.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is a database/sql handle that knows its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
}

// Open opens a PostgreSQL URL (postgres:// or postgresql://) or an SQLite
// file (a path, or sqlite:PATH) and checks it answers.
//
// SQLite is opened in WAL mode with a busy timeout and immediate write
// transactions, so that two processes can share one file: readers never
// block, writers queue for the lock instead of failing, and a transaction
// that reads before it writes cannot deadlock on the upgrade.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("appkit: open postgres: %w", err)
		}
		s.SetMaxOpenConns(20)
		s.SetMaxIdleConns(20)
		s.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{DB: s, Dialect: Postgres}
	case dsn == "":
		return nil, errors.New("appkit: empty database DSN")
	default:
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("_txlock", "immediate")
		s, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("appkit: open sqlite %s: %w", path, err)
		}
		// One writer at a time anyway; a few connections let reads proceed
		// beside it.
		s.SetMaxOpenConns(8)
		db = &DB{DB: s, Dialect: SQLite}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("appkit: connect to %s database: %w", db.Dialect, err)
	}
	return db, nil
}

// InTx runs fn in a transaction and commits it when fn returns nil.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// kitSchema is the kit's own tables, created before the app's migrations
// under the same lock. Times are Unix milliseconds in both dialects.
func kitSchema(d Dialect) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS appkit_schema (
			version BIGINT PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at_ms BIGINT NOT NULL,
			applied_by TEXT NOT NULL
		)`,
		// Named counters: the event id is taken from here inside the
		// writing transaction, so ids become visible in commit order.
		`CREATE TABLE IF NOT EXISTS appkit_counter (
			name TEXT PRIMARY KEY,
			n BIGINT NOT NULL
		)`,
		`INSERT INTO appkit_counter (name, n) VALUES ('events', 0) ON CONFLICT (name) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS appkit_events (
			id BIGINT PRIMARY KEY,
			kind TEXT NOT NULL,
			data TEXT NOT NULL,
			at_ms BIGINT NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS appkit_fence (
			id INTEGER PRIMARY KEY,
			epoch BIGINT NOT NULL,
			seen_at_ms BIGINT NOT NULL,
			owner TEXT NOT NULL
		)`,
		`INSERT INTO appkit_fence (id, epoch, seen_at_ms, owner) VALUES (1, 0, 0, '') ON CONFLICT (id) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS appkit_idempotency (
			scope TEXT NOT NULL,
			key TEXT NOT NULL,
			fingerprint TEXT NOT NULL,
			status INTEGER NOT NULL,
			content_type TEXT NOT NULL,
			body ` + map[Dialect]string{Postgres: "BYTEA", SQLite: "BLOB"}[d] + ` NOT NULL,
			at_ms BIGINT NOT NULL,
			PRIMARY KEY (scope, key)
		)`,
	}
}

func nowMS() int64 { return time.Now().UnixMilli() }
