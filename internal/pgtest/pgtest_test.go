package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDB: two databases on the shared server are distinct, usable and on
// loopback.
func TestDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two databases with one DSN: %s", a)
	}
	for i, dsn := range []string{a, b} {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE x (n int)"); err != nil {
			t.Fatalf("database %d: %v", i, err)
		}
		var addr string
		if err := c.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil || addr != "127.0.0.1" {
			t.Errorf("server address %q (%v), want 127.0.0.1", addr, err)
		}
	}
}

// TestStartStop: a server of its own starts and stops, and its directory
// is gone afterwards.
func TestStartStop(t *testing.T) {
	start := time.Now()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initdb and start took %v", time.Since(start).Round(time.Millisecond))
	dir := s.dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there after Stop (%v)", dir, err)
	}
}

// TestMissingBinaries: a wrong $PGTEST_BIN is an error that says what to do.
func TestMissingBinaries(t *testing.T) {
	t.Setenv(BinEnv, t.TempDir())
	if _, err := FindBin(); err == nil {
		t.Fatal("FindBin found binaries in an empty directory")
	}
}
