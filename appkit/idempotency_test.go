package appkit

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestIdempotent: concurrent calls with one key, through two connection
// pools (two instances), run the write once and all get its response; the
// key reused for another request is refused; a failed write leaves the
// key free.
func TestIdempotent(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		dsn := dsnFor(t, d)
		dbA := openRaw(t, dsn)
		if _, err := (&Migrator{DB: dbA, Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		dbB := openRaw(t, dsn)
		if _, err := dbA.ExecContext(testCtx(t), `CREATE TABLE items (n INTEGER NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int64
		write := func(tx *sql.Tx) (Response, error) {
			runs.Add(1)
			if _, err := tx.ExecContext(testCtx(t), `INSERT INTO items (n) VALUES (1)`); err != nil {
				return Response{}, err
			}
			return Response{Status: 201, ContentType: "text/plain", Body: []byte("created")}, nil
		}
		var wg sync.WaitGroup
		var replays atomic.Int64
		for i := range 10 {
			db := dbA
			if i%2 == 1 {
				db = dbB
			}
			wg.Go(func() {
				resp, replayed, err := db.Idempotent(testCtx(t), "user:1", "key-1", []byte("POST /items"), write)
				if err != nil || resp.Status != 201 || string(resp.Body) != "created" {
					t.Errorf("call %d: %+v %v", i, resp, err)
				}
				if replayed {
					replays.Add(1)
				}
			})
		}
		wg.Wait()
		var n int
		dbA.QueryRowContext(testCtx(t), `SELECT COUNT(*) FROM items`).Scan(&n)
		if runs.Load() != 1 || n != 1 || replays.Load() != 9 {
			t.Errorf("write ran %d times, %d rows, %d replays; want 1, 1, 9", runs.Load(), n, replays.Load())
		}
		// The same key from another user is another request.
		if _, replayed, err := dbA.Idempotent(testCtx(t), "user:2", "key-1", []byte("POST /items"), write); err != nil || replayed {
			t.Errorf("another scope: replayed %v, %v", replayed, err)
		}
		if _, _, err := dbA.Idempotent(testCtx(t), "user:1", "key-1", []byte("POST /other"), write); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Errorf("key reused for another request: %v, want a mismatch", err)
		}
		if _, _, err := dbA.Idempotent(testCtx(t), "user:1", "", nil, write); !errors.Is(err, ErrBadIdempotencyKey) {
			t.Errorf("an empty key: %v, want ErrBadIdempotencyKey", err)
		}
		fail := func(tx *sql.Tx) (Response, error) { return Response{}, fmt.Errorf("boom") }
		if _, _, err := dbA.Idempotent(testCtx(t), "user:1", "key-2", nil, fail); err == nil {
			t.Fatal("a failing write succeeded")
		}
		if _, replayed, err := dbA.Idempotent(testCtx(t), "user:1", "key-2", nil, write); err != nil || replayed {
			t.Errorf("retry after a failed write: replayed %v, %v; want it applied", replayed, err)
		}
	})
}
