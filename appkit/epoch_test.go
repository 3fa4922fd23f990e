package appkit

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func epochReq(method string, epoch int) *http.Request {
	r := httptest.NewRequest(method, "/tasks", nil)
	if epoch >= 0 {
		r.Header.Set(EpochHeader, strconv.Itoa(epoch))
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestFence: two instances share the newest epoch through the database;
// a write carrying an older one is refused with 409 on either, reads and
// requests without the header pass.
func TestFence(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		dsn := dsnFor(t, d)
		dbA := openRaw(t, dsn)
		if _, err := (&Migrator{DB: dbA, Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		var writes atomic.Int64
		ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" {
				writes.Add(1)
			}
		})
		a := &Epochs{DB: dbA, Log: testLog(t)}
		b := &Epochs{DB: openRaw(t, dsn), Log: testLog(t)}
		fa, fb := a.Fence(ok), b.Fence(ok)

		cases := []struct {
			name  string
			h     http.Handler
			r     *http.Request
			want  int
			wrote bool
		}{
			{"the old master writes with epoch 1", fa, epochReq("POST", 1), 200, true},
			{"the switch: the failover writes with epoch 2", fb, epochReq("POST", 2), 200, true},
			{"a stale gateway still sends epoch 1 to the old master", fa, epochReq("POST", 1), 409, false},
			{"a DELETE with epoch 1", fa, epochReq("DELETE", 1), 409, false},
			{"a read with epoch 1 passes", fa, epochReq("GET", 1), 200, false},
			{"no header (no gateway) passes", fa, epochReq("POST", -1), 200, true},
			{"the old master with the new epoch", fa, epochReq("POST", 2), 200, true},
			{"the failover gets a stale epoch", fb, epochReq("PUT", 1), 409, false},
		}
		for _, tc := range cases {
			before := writes.Load()
			w := serve(tc.h, tc.r)
			if w.Code != tc.want || (writes.Load() > before) != tc.wrote {
				t.Errorf("%s: %d %q (wrote %v), want %d", tc.name, w.Code, w.Body.String(), writes.Load() > before, tc.want)
			}
			if w.Code == 409 && !strings.Contains(w.Body.String(), "epoch 1 but epoch 2 is newer") {
				t.Errorf("%s: refusal %q does not say why", tc.name, w.Body.String())
			}
		}
	})
}

// TestFenceLateRequest: with instance names, a write carrying the old
// epoch that reaches the newest epoch's server (a gateway retry keeps its
// first attempt's epoch) is accepted; the old master still refuses it.
func TestFenceLateRequest(t *testing.T) {
	dsn := dsnFor(t, Postgres)
	db := openRaw(t, dsn)
	if _, err := (&Migrator{DB: db, Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	master := (&Epochs{DB: db, Instance: "master", Log: testLog(t)}).Fence(ok)
	failover := (&Epochs{DB: openRaw(t, dsn), Instance: "failover", Log: testLog(t)}).Fence(ok)
	for _, tc := range []struct {
		name string
		h    http.Handler
		r    *http.Request
		want int
	}{
		{"the master writes with epoch 1", master, epochReq("POST", 1), 200},
		{"the switch: the failover gets epoch 2 first", failover, epochReq("POST", 2), 200},
		{"a retry with epoch 1 reaches the failover", failover, epochReq("POST", 1), 200},
		{"a stale gateway's epoch 1 reaches the old master", master, epochReq("POST", 1), 409},
	} {
		if w := serve(tc.h, tc.r); w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body.String(), tc.want)
		}
	}
	// Inside the write's transaction too.
	e := &Epochs{DB: db, Instance: "failover"}
	err := db.InTx(testCtx(t), func(tx *sql.Tx) error {
		return e.FenceTx(context.WithValue(testCtx(t), epochKey{}, uint64(1)), tx)
	})
	if err != nil {
		t.Errorf("FenceTx of a late request on the newest epoch's server: %v", err)
	}
	e.Instance = "master"
	err = db.InTx(testCtx(t), func(tx *sql.Tx) error {
		return e.FenceTx(context.WithValue(testCtx(t), epochKey{}, uint64(1)), tx)
	})
	if !errors.Is(err, ErrFenced) {
		t.Errorf("FenceTx of epoch 1 on the old master: %v, want fenced", err)
	}
}

// TestFenceTx: a write that passed the middleware but commits after a
// newer epoch was recorded is refused inside its transaction.
func TestFenceTx(t *testing.T) {
	db := openDB(t, Postgres)
	e := &Epochs{DB: db}
	ctx := testCtx(t)
	if err := e.Check(ctx, 3); err != nil {
		t.Fatal(err)
	}
	reqCtx := context.WithValue(ctx, epochKey{}, uint64(3))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.FenceTx(reqCtx, tx); err != nil {
		t.Fatalf("epoch 3 is the newest: %v", err)
	}
	// The other instance records epoch 4 while this write is in flight: it
	// waits for the write to end (the share lock)...
	advanced := make(chan error, 1)
	other := &Epochs{DB: openRaw(t, dsnOf(t, db))}
	go func() { advanced <- other.Check(ctx, 4) }()
	select {
	case err := <-advanced:
		t.Fatalf("epoch 4 recorded during a write fenced by epoch 3 (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-advanced; err != nil {
		t.Fatal(err)
	}
	// ...and the next write with epoch 3 is refused in its transaction.
	err = db.InTx(ctx, func(tx *sql.Tx) error { return e.FenceTx(reqCtx, tx) })
	var fe *FenceError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFenced) || fe.Newest != 4 {
		t.Errorf("a write with epoch 3 after 4: %v, want a FenceError naming 4", err)
	}
}

// dsnOf finds the DSN a test database was opened with (for a second pool).
var dsns sync.Map

func dsnOf(t *testing.T, db *DB) string {
	v, ok := dsns.Load(db)
	if !ok {
		t.Fatal("no DSN recorded for this database")
	}
	return v.(string)
}

// TestFenceReset: with ResetAfter, a gateway that restarted (its epoch
// back to 1) is accepted once the newer epoch has been unseen that long.
func TestFenceReset(t *testing.T) {
	db := openDB(t, SQLite)
	e := &Epochs{DB: db, ResetAfter: 300 * time.Millisecond, Log: testLog(t)}
	ctx := testCtx(t)
	if err := e.Check(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := e.Check(ctx, 1); !errors.Is(err, ErrFenced) {
		t.Fatalf("epoch 1 right after 7: %v, want fenced", err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := e.Check(ctx, 1); err != nil {
		t.Fatalf("epoch 1 after 7 was unseen for longer than ResetAfter: %v", err)
	}
	if e.Newest() != 1 {
		t.Errorf("newest %d after the reset, want 1", e.Newest())
	}
	if err := e.Check(ctx, 2); err != nil {
		t.Errorf("the restarted gateway's next epoch: %v", err)
	}
}

// TestRole: the role follows the traffic: unknown before any gateway
// request, active while requests (or a websocket) carry the newest epoch,
// standby once a newer epoch went elsewhere.
func TestRole(t *testing.T) {
	db := openDB(t, SQLite)
	a := &Epochs{DB: db, Window: 200 * time.Millisecond}
	b := &Epochs{DB: db, Window: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range []*Epochs{a, b} {
		wg.Go(func() { e.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	if a.Role() != RoleUnknown {
		t.Errorf("before any request: %s, want unknown", a.Role())
	}
	if (&Epochs{Standalone: true}).Role() != RoleActive {
		t.Error("a standalone instance is not active")
	}
	a.Observe(epochReq("GET", 1))
	release := a.Hold(1)
	if a.Role() != RoleActive {
		t.Errorf("after a request with epoch 1: %s, want active", a.Role())
	}
	// b has seen no gateway request, but learns from the database that the
	// gateway sends its traffic elsewhere.
	for deadline := time.Now().Add(3 * time.Second); b.Role() != RoleStandby && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if b.Role() != RoleStandby {
		t.Errorf("the instance without traffic: %s, want standby", b.Role())
	}
	time.Sleep(300 * time.Millisecond)
	if a.Role() != RoleActive {
		t.Errorf("holding a websocket with the newest epoch: %s, want active", a.Role())
	}
	// The switch: b gets epoch 2; a learns it through the database.
	b.Observe(epochReq("GET", 2))
	deadline := time.Now().Add(3 * time.Second)
	for a.Newest() != 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a.Newest() != 2 {
		t.Fatalf("a did not learn epoch 2 from the database")
	}
	release()
	b.Observe(epochReq("POST", 2))
	if a.Role() != RoleStandby || b.Role() != RoleActive {
		t.Errorf("after the switch: a %s, b %s; want standby, active", a.Role(), b.Role())
	}
}

func checkReq(role string) *http.Request {
	r := httptest.NewRequest("GET", "/status", nil)
	r.Header.Set(RoleHeader, role)
	return r
}

// TestRoleFromChecks: the gateway's checks name the role, so an active
// server with no traffic for a while is still active, and a standby is
// standby whatever old traffic it saw; traffic with a newer epoch than the
// last check's wins until the next check; without checks the traffic
// decides, as before.
func TestRoleFromChecks(t *testing.T) {
	const window = 150 * time.Millisecond
	t.Run("idle active server stays active", func(t *testing.T) {
		e := &Epochs{Window: window}
		e.Observe(epochReq("GET", 3))
		for range 3 {
			time.Sleep(window / 2)
			e.ObserveCheck(checkReq("active; epoch=3"))
		}
		if time.Since(time.Unix(0, e.activeAt.Load())) < window {
			t.Fatal("the test wants traffic older than the window")
		}
		if r := e.Role(); r != RoleActive {
			t.Errorf("active by the checks, no traffic for %v: %s, want active", window, r)
		}
	})
	t.Run("first word is a check", func(t *testing.T) {
		e := &Epochs{Window: window}
		if !e.ObserveCheck(checkReq("active; epoch=5")) || e.Role() != RoleActive || e.Newest() != 5 {
			t.Errorf("after an active check at epoch 5: role %s, newest %d; want active, 5", e.Role(), e.Newest())
		}
		s := &Epochs{Window: window}
		if !s.ObserveCheck(checkReq("standby; epoch=5")) || s.Role() != RoleStandby || s.Newest() != 0 {
			t.Errorf("after a standby check: role %s, newest %d; want standby and no epoch taken", s.Role(), s.Newest())
		}
	})
	t.Run("standby check beats old traffic, newer traffic beats the check", func(t *testing.T) {
		e := &Epochs{Window: window}
		e.Observe(epochReq("GET", 3))
		e.ObserveCheck(checkReq("standby; epoch=4"))
		if r := e.Role(); r != RoleStandby {
			t.Errorf("traffic at 3, then a check saying standby at 4: %s, want standby", r)
		}
		e.Observe(epochReq("GET", 3)) // a late retry of the old epoch
		if r := e.Role(); r != RoleStandby {
			t.Errorf("a late request at the old epoch: %s, want standby", r)
		}
		e.Observe(epochReq("GET", 5)) // switched back before the next check
		if r := e.Role(); r != RoleActive {
			t.Errorf("traffic at 5 after the check at 4: %s, want active", r)
		}
	})
	t.Run("a stale check leaves the traffic to decide", func(t *testing.T) {
		e := &Epochs{Window: window}
		e.ObserveCheck(checkReq("standby; epoch=1"))
		time.Sleep(window + 20*time.Millisecond)
		e.Observe(epochReq("GET", 2))
		if r := e.Role(); r != RoleActive {
			t.Errorf("check older than the window, traffic now: %s, want active", r)
		}
	})
	t.Run("not the gateway's word", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  *http.Request
		}{
			{"through the proxy (has X-Tandem-Epoch)", func() *http.Request { r := checkReq("active; epoch=9"); r.Header.Set(EpochHeader, "1"); return r }()},
			{"unknown role", checkReq("leader; epoch=9")},
			{"bad epoch", checkReq("active; epoch=x")},
		} {
			e := &Epochs{Window: window}
			if e.ObserveCheck(tc.req) {
				t.Errorf("%s: taken as a check", tc.name)
			}
			if e.Newest() == 9 {
				t.Errorf("%s: epoch taken", tc.name)
			}
		}
	})
	t.Run("status body says it", func(t *testing.T) {
		st := NewStatus("master", "1.0")
		st.Epochs = &Epochs{Window: window}
		st.SetReady()
		rec := serve(st, checkReq("active; epoch=7"))
		if !strings.Contains(rec.Body.String(), `"role":"active"`) || !strings.Contains(rec.Body.String(), `"epoch":7`) {
			t.Errorf("/status after the gateway's check: %s, want role active, epoch 7", rec.Body)
		}
	})
}
