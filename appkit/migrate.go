package appkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Migration is one numbered SQL script.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var migrationName = regexp.MustCompile(`^(\d+)_([A-Za-z0-9_-]+?)(?:\.(postgres|sqlite))?\.sql$`)

// LoadMigrations reads the migrations for dialect d from the top of fsys:
// files named NNNN_name.sql, where NNNN_name.postgres.sql or
// NNNN_name.sqlite.sql replaces the plain file for that dialect. Versions
// must be unique and start at 1 with no gap.
func LoadMigrations(fsys fs.FS, d Dialect) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("appkit: migrations: %w", err)
	}
	type pick struct {
		m        Migration
		specific bool
	}
	byVersion := map[int]pick{}
	for _, e := range entries {
		sm := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || sm == nil {
			continue
		}
		if sm[3] != "" && Dialect(sm[3]) != d {
			continue
		}
		v, _ := strconv.Atoi(sm[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("appkit: migration %s: %w", e.Name(), err)
		}
		p := pick{m: Migration{Version: v, Name: sm[2], SQL: string(b)}, specific: sm[3] != ""}
		if prev, ok := byVersion[v]; ok {
			if prev.specific == p.specific {
				return nil, fmt.Errorf("appkit: two migrations numbered %d (%s, %s)", v, prev.m.Name, p.m.Name)
			}
			if prev.specific {
				continue
			}
		}
		byVersion[v] = p
	}
	var out []Migration
	for _, p := range byVersion {
		out = append(out, p.m)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("appkit: migrations must be numbered 1, 2, 3...: found %d where %d was expected", m.Version, i+1)
		}
	}
	return out, nil
}

// ErrSchemaTooNew means the database's schema is newer than the newest
// migration this binary knows: an older version is running against a
// database a newer version migrated. It must not serve: it would write
// what the new schema does not expect.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// SchemaError gives the versions; it matches ErrSchemaTooNew.
type SchemaError struct{ DB, Known int }

func (e *SchemaError) Error() string {
	return fmt.Sprintf("refusing to serve: the database schema is at version %d but this binary knows versions up to %d "+
		"(a newer version migrated the database; is an old version still deployed? use the Recreate strategy)", e.DB, e.Known)
}

func (e *SchemaError) Is(target error) bool { return target == ErrSchemaTooNew }

// Migrator applies migrations at start, under a lock so that instances
// starting at once migrate once, and guards the schema while running.
type Migrator struct {
	DB         *DB
	Migrations []Migration
	// Known is the newest version this binary knows (default: the last
	// migration). Lowering it makes an "old binary", for tests and demos.
	Known int
	// Instance is recorded with each applied migration.
	Instance string
	// Status, when set, is not ready while migrating and refuses to serve
	// while the schema is too new.
	Status *Status
	// Every is how often Run checks the schema version (default 2s).
	Every time.Duration
	Log   *slog.Logger
}

func (m *Migrator) known() int {
	if m.Known > 0 {
		return min(m.Known, len(m.Migrations))
	}
	return len(m.Migrations)
}

func (m *Migrator) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

// advisoryLockKey is the PostgreSQL advisory lock taken while migrating:
// any fixed number, the same in every instance.
const advisoryLockKey = 0x74616e64656d // "tandem"

// Migrate creates the kit's tables and applies the pending migrations up
// to Known, and returns how many it applied. A schema newer than Known is
// a *SchemaError, and Status then refuses to serve.
func (m *Migrator) Migrate(ctx context.Context) (int, error) {
	known := m.known()
	if m.Status != nil {
		m.Status.SetNotReady("migrating the database schema")
	}
	conn, err := m.DB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("appkit: migrate: %w", err)
	}
	defer conn.Close()

	applied := 0
	var current int
	switch m.DB.Dialect {
	case Postgres:
		// A session lock on this one connection: the second instance waits
		// here, then finds nothing left to do.
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(advisoryLockKey)); err != nil {
			return 0, fmt.Errorf("appkit: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(advisoryLockKey))
		for _, q := range kitSchema(m.DB.Dialect) {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("appkit: migrate: kit tables: %w", err)
			}
		}
		if current, err = schemaVersion(ctx, conn); err != nil {
			return 0, err
		}
		if current > known {
			break
		}
		// One transaction per migration: PostgreSQL's DDL is transactional,
		// so a failed migration leaves the previous version intact.
		for _, mg := range m.Migrations[current:known] {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return applied, fmt.Errorf("appkit: migrate: %w", err)
			}
			if err := m.apply(ctx, tx, mg); err != nil {
				tx.Rollback()
				return applied, err
			}
			if err := tx.Commit(); err != nil {
				return applied, fmt.Errorf("appkit: migration %d: commit: %w", mg.Version, err)
			}
			applied++
			current = mg.Version
		}
	case SQLite:
		// One write transaction (BEGIN IMMEDIATE) for everything: the file's
		// write lock is the migration lock, and a failure leaves nothing.
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return 0, fmt.Errorf("appkit: migrate: lock: %w", err)
		}
		defer tx.Rollback()
		for _, q := range kitSchema(m.DB.Dialect) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("appkit: migrate: kit tables: %w", err)
			}
		}
		if current, err = schemaVersion(ctx, tx); err != nil {
			return 0, err
		}
		if current <= known {
			for _, mg := range m.Migrations[current:known] {
				if err := m.apply(ctx, tx, mg); err != nil {
					return 0, err
				}
				applied++
				current = mg.Version
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("appkit: migrate: commit: %w", err)
		}
	default:
		return 0, fmt.Errorf("appkit: migrate: unknown dialect %q", m.DB.Dialect)
	}
	if m.Status != nil {
		m.Status.SetSchema(current, known)
	}
	if current > known {
		err := &SchemaError{DB: current, Known: known}
		if m.Status != nil {
			m.Status.Refuse(err.Error())
		}
		m.log().Error("schema guard", "error", err)
		return 0, err
	}
	if m.Status != nil {
		m.Status.SetReady()
	}
	return applied, nil
}

func (m *Migrator) apply(ctx context.Context, tx *sql.Tx, mg Migration) error {
	start := time.Now()
	if _, err := tx.ExecContext(ctx, mg.SQL); err != nil {
		return fmt.Errorf("appkit: migration %d (%s): %w", mg.Version, mg.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO appkit_schema (version, name, applied_at_ms, applied_by) VALUES ($1, $2, $3, $4)`,
		mg.Version, mg.Name, nowMS(), m.Instance); err != nil {
		return fmt.Errorf("appkit: migration %d (%s): record: %w", mg.Version, mg.Name, err)
	}
	m.log().Info("migration applied", "version", mg.Version, "name", mg.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM appkit_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("appkit: schema version: %w", err)
	}
	return v, nil
}

// Version returns the database's schema version.
func (m *Migrator) Version(ctx context.Context) (int, error) { return schemaVersion(ctx, m.DB) }

// Run guards the schema until ctx ends: should a newer version migrate
// the database while this one runs (a rolling update instead of
// Recreate), this instance stops serving at once and /status says why.
func (m *Migrator) Run(ctx context.Context) error {
	every := m.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	refused := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := m.Version(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.log().Warn("schema guard cannot read the schema version", "error", err)
			}
			continue
		}
		known := m.known()
		if m.Status != nil {
			m.Status.SetSchema(v, known)
		}
		switch {
		case v > known && !refused:
			err := &SchemaError{DB: v, Known: known}
			m.log().Error("schema guard", "error", err)
			if m.Status != nil {
				m.Status.Refuse(err.Error())
			}
			refused = true
		case v <= known && refused:
			m.log().Info("schema guard: the schema is one this binary knows again", "version", v)
			if m.Status != nil {
				m.Status.Refuse("")
			}
			refused = false
		}
	}
}
