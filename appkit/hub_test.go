package appkit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testLog sends a component's log to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startHub runs a hub on db behind an HTTP server and returns its ws URL.
func startHub(t *testing.T, db *DB, name string) (*Hub, string) {
	t.Helper()
	h := &Hub{DB: db, Name: name, Poll: 50 * time.Millisecond, Log: testLog(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func publish(t *testing.T, db *DB, h *Hub, n int) {
	t.Helper()
	for i := range n {
		err := db.InTx(testCtx(t), func(tx *sql.Tx) error {
			_, err := h.Publish(testCtx(t), tx, "note", map[string]int{"n": i})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.Notify()
}

type wsReader struct {
	t     *testing.T
	c     *websocket.Conn
	hello map[string]any
}

func dialHub(t *testing.T, url string) *wsReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	r := &wsReader{t: t, c: c}
	ev := r.next()
	if ev.Kind != KindHello {
		t.Fatalf("first message %+v, want a hello", ev)
	}
	json.Unmarshal(ev.Data, &r.hello)
	return r
}

func (r *wsReader) next() Event {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, b, err := r.c.Read(ctx)
	if err != nil {
		r.t.Fatalf("websocket read: %v", err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		r.t.Fatal(err)
	}
	return ev
}

// ids reads n events and returns their ids.
func (r *wsReader) ids(n int) []int64 {
	r.t.Helper()
	var out []int64
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, b, err := r.c.Read(ctx)
		cancel()
		if err != nil {
			r.t.Fatalf("websocket read after %d events %v: %v", len(out), out, err)
		}
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, ev.ID)
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestHubResume: a client that reconnects with since gets exactly the
// events it missed, then new ones; events published through another
// instance reach it through the database; a client whose missed events
// were pruned is told to reset.
func TestHubResume(t *testing.T) {
	bothDialects(t, func(t *testing.T, d Dialect) {
		dsn := dsnFor(t, d)
		dbA := openRaw(t, dsn)
		if _, err := (&Migrator{DB: dbA, Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		dbB := openRaw(t, dsn)
		hubA, urlA := startHub(t, dbA, "a")
		hubB, urlB := startHub(t, dbB, "b")

		c := dialHub(t, urlA)
		if c.hello["server"] != "a" {
			t.Errorf("hello %v, want server a", c.hello)
		}
		publish(t, dbA, hubA, 3)
		if got := fmt.Sprint(c.ids(3)); got != fmt.Sprint(seq(1, 3)) {
			t.Fatalf("live events %s, want 1..3", got)
		}
		// The client goes away; events happen meanwhile, on both instances.
		c.c.CloseNow()
		publish(t, dbA, hubA, 2)
		publish(t, dbB, hubB, 2)
		// It reconnects to the other instance with the last id it saw.
		c = dialHub(t, urlB+"?since=3")
		if got := fmt.Sprint(c.ids(4)); got != fmt.Sprint(seq(4, 7)) {
			t.Fatalf("resumed events %s, want 4..7", got)
		}
		// Live again, from the instance it is not connected to.
		publish(t, dbA, hubA, 1)
		if ev := c.next(); ev.ID != 8 || ev.Kind != "note" || string(ev.Data) != `{"n":0}` {
			t.Errorf("event through the other instance %+v, want id 8", ev)
		}
		// A client without since gets only new events.
		fresh := dialHub(t, urlA)
		publish(t, dbA, hubA, 1)
		if ev := fresh.next(); ev.ID != 9 {
			t.Errorf("a new client's first event %d, want 9", ev.ID)
		}
		// Pruned history: the client is told to reset.
		if _, err := dbA.ExecContext(testCtx(t), `DELETE FROM appkit_events WHERE id <= 5`); err != nil {
			t.Fatal(err)
		}
		old := dialHub(t, urlA+"?since=2")
		if ev := old.next(); ev.Kind != KindReset {
			t.Errorf("since a pruned id: %+v, want a reset", ev)
		}
	})
}

// TestHubConcurrentPublish: ids from concurrent writers on two instances
// are gapless and each reaches a client once, in order.
func TestHubConcurrentPublish(t *testing.T) {
	dsn := dsnFor(t, Postgres)
	dbA, dbB := openRaw(t, dsn), openRaw(t, dsn)
	if _, err := (&Migrator{DB: dbA, Log: testLog(t)}).Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	hubA, urlA := startHub(t, dbA, "a")
	hubB, _ := startHub(t, dbB, "b")
	c := dialHub(t, urlA)
	const writers, each = 8, 25
	errs := make(chan error, writers)
	for w := range writers {
		db, h := dbA, hubA
		if w%2 == 1 {
			db, h = dbB, hubB
		}
		go func() {
			for range each {
				err := db.InTx(testCtx(t), func(tx *sql.Tx) error {
					_, err := h.Publish(testCtx(t), tx, "note", w)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				h.Notify()
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(c.ids(writers * each)); got != fmt.Sprint(seq(1, writers*each)) {
		t.Errorf("client saw %s, want 1..%d in order", got, writers*each)
	}
}
