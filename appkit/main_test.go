package appkit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/pgtest"
)

// One PostgreSQL for the package, a fresh database per test.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens a fresh database of dialect d with the kit's tables.
func openDB(t *testing.T, d Dialect) *DB {
	t.Helper()
	db := openRaw(t, dsnFor(t, d))
	if _, err := (&Migrator{DB: db, Instance: "test", Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return db
}

func dsnFor(t *testing.T, d Dialect) string {
	t.Helper()
	if d == Postgres {
		return pgtest.DB(t)
	}
	return filepath.Join(t.TempDir(), "app.db")
}

func openRaw(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dsns.Store(db, dsn)
	return db
}

// bothDialects runs fn as a subtest on PostgreSQL and on SQLite.
func bothDialects(t *testing.T, fn func(t *testing.T, d Dialect)) {
	for _, d := range []Dialect{Postgres, SQLite} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}
