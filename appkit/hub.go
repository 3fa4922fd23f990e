package appkit

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Event is one change broadcast to websocket clients. Ids come from the
// database in commit order with no gaps, so a client that has seen id N
// has seen everything up to N.
type Event struct {
	ID   int64           `json:"id"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
	At   int64           `json:"at"` // Unix milliseconds
}

// Kinds of the hub's own messages (ids 0; not stored).
const (
	// KindHello is the first message: data {server, last}.
	KindHello = "appkit.hello"
	// KindReset tells a client that the events it missed are gone (pruned):
	// it must reload its state instead of replaying.
	KindReset = "appkit.reset"
)

// Hub serves websocket clients the events the app publishes, from
// whichever instance: every event is a database row, a poller broadcasts
// the new rows, and a reconnecting client names the last id it saw
// (?since=ID) and gets the rest from the table.
type Hub struct {
	DB *DB
	// Name is sent in the hello message (the instance's name).
	Name string
	// Epochs, when set, counts each open websocket as serving with the
	// epoch it was opened with.
	Epochs *Epochs
	// Poll is how often the table is read for events committed by the other
	// instance (default 250ms); local ones are read at once (Notify).
	Poll time.Duration
	// Keep is how many events stay in the table (default 10000).
	Keep int64
	// Authorize, when set, must accept the upgrade request.
	Authorize func(r *http.Request) bool
	Log       *slog.Logger

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	fns  []func(Event)
	last atomic.Int64 // the last id broadcast
	wake chan struct{}
	once sync.Once

	startMu sync.Mutex
	started bool
	done    chan struct{} // closed when Run ends: websockets are told to go away

	clients atomic.Int64
}

type subscriber struct {
	ch   chan Event
	gone chan struct{} // closed when the subscriber fell behind
	once sync.Once
}

func (h *Hub) init() {
	h.once.Do(func() {
		h.wake = make(chan struct{}, 1)
		h.subs = map[*subscriber]struct{}{}
		h.done = make(chan struct{})
	})
}

func (h *Hub) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// Publish records an event inside the caller's write transaction: it
// exists if and only if the write commits. Its id comes from a counter row
// that the transaction holds locked until it ends, so ids become visible
// in order. Call Notify after the commit to broadcast at once.
func (h *Hub) Publish(ctx context.Context, tx *sql.Tx, kind string, data any) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("appkit: event %s: %w", kind, err)
	}
	ev := Event{Kind: kind, Data: b, At: nowMS()}
	if err := tx.QueryRowContext(ctx, `UPDATE appkit_counter SET n = n + 1 WHERE name = 'events' RETURNING n`).Scan(&ev.ID); err != nil {
		return Event{}, fmt.Errorf("appkit: event id: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO appkit_events (id, kind, data, at_ms) VALUES ($1, $2, $3, $4)`,
		ev.ID, ev.Kind, string(ev.Data), ev.At); err != nil {
		return Event{}, fmt.Errorf("appkit: event: %w", err)
	}
	return ev, nil
}

// Notify makes the poller read new events now.
func (h *Hub) Notify() {
	h.init()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Subscribe calls fn, from the poller's goroutine, with every event in id
// order (an in-memory cache keeps itself current this way).
func (h *Hub) Subscribe(fn func(Event)) {
	h.mu.Lock()
	h.fns = append(h.fns, fn)
	h.mu.Unlock()
}

// LastID returns the newest event id in the database.
func (h *Hub) LastID(ctx context.Context, q queryer) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT n FROM appkit_counter WHERE name = 'events'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("appkit: last event id: %w", err)
	}
	return n, nil
}

// Since returns up to limit events after id, and whether id is still
// covered (false when events after it were pruned).
func (h *Hub) Since(ctx context.Context, id int64, limit int) ([]Event, bool, error) {
	rows, err := h.DB.QueryContext(ctx, `SELECT id, kind, data, at_ms FROM appkit_events WHERE id > $1 ORDER BY id LIMIT $2`, id, limit)
	if err != nil {
		return nil, false, fmt.Errorf("appkit: events: %w", err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var ev Event
		var data string
		if err := rows.Scan(&ev.ID, &ev.Kind, &data, &ev.At); err != nil {
			return nil, false, fmt.Errorf("appkit: events: %w", err)
		}
		ev.Data = json.RawMessage(data)
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("appkit: events: %w", err)
	}
	covered := len(evs) == 0 || evs[0].ID == id+1
	if len(evs) == 0 {
		// Nothing after id in the table: fine unless the counter is past it.
		last, err := h.LastID(ctx, h.DB)
		if err != nil {
			return nil, false, err
		}
		covered = last <= id
	}
	return evs, covered, nil
}

// start sets where broadcasting begins, once: by Run or by the first
// client, whichever comes first, so that no event committed after a
// client's start can fall before the poller's.
func (h *Hub) start(ctx context.Context) error {
	h.init()
	h.startMu.Lock()
	defer h.startMu.Unlock()
	if h.started {
		return nil
	}
	last, err := h.LastID(ctx, h.DB)
	if err != nil {
		return err
	}
	h.last.Store(last)
	h.started = true
	return nil
}

// Run polls for new events and broadcasts them until ctx ends; it also
// prunes old events.
func (h *Hub) Run(ctx context.Context) error {
	if err := h.start(ctx); err != nil {
		return err
	}
	// http.Server.Shutdown leaves hijacked connections alone: end them
	// here, with 1001 so that clients reconnect (to the other instance).
	defer close(h.done)
	poll := h.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	keep := h.Keep
	if keep <= 0 {
		keep = 10000
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-h.wake:
		case <-prune.C:
			if _, err := h.DB.ExecContext(ctx, `DELETE FROM appkit_events WHERE id <= $1`, h.last.Load()-keep); err != nil && ctx.Err() == nil {
				h.log().Warn("cannot prune old events", "error", err)
			}
			continue
		}
		for {
			evs, _, err := h.Since(ctx, h.last.Load(), 500)
			if err != nil {
				if ctx.Err() == nil {
					h.log().Warn("cannot read new events", "error", err)
				}
				break
			}
			for _, ev := range evs {
				h.broadcast(ev)
			}
			if len(evs) < 500 {
				break
			}
		}
	}
}

func (h *Hub) broadcast(ev Event) {
	h.last.Store(ev.ID)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, fn := range h.fns {
		fn(ev)
	}
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			// Too slow: drop it rather than hold everyone up; it reconnects
			// and reads what it missed from the table.
			delete(h.subs, s)
			s.once.Do(func() { close(s.gone) })
		}
	}
}

func (h *Hub) subscribe() *subscriber {
	h.init()
	s := &subscriber{ch: make(chan Event, 256), gone: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Clients is the number of open websockets.
func (h *Hub) Clients() int64 { return h.clients.Load() }

// CloseUnauthorized is the close code for a websocket whose session is not
// logged in: the client stops reconnecting.
const CloseUnauthorized websocket.StatusCode = 4401

// ServeHTTP upgrades to a websocket and sends: a hello, the events after
// ?since=ID (or a reset if they were pruned), then every new event. Without
// since, only new events are sent.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var since int64 = -1
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad since: want an event id", http.StatusBadRequest)
			return
		}
		since = n
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered
	}
	defer c.CloseNow()
	if h.Authorize != nil && !h.Authorize(r) {
		c.Close(CloseUnauthorized, "log in first")
		return
	}
	if h.Epochs != nil {
		if n, ok := h.Epochs.Observe(r); ok {
			defer h.Epochs.Hold(n)()
		}
	}
	h.clients.Add(1)
	defer h.clients.Add(-1)
	ctx := c.CloseRead(r.Context()) // answers pings and notices the close
	if err := h.serve(ctx, c, since); err != nil && ctx.Err() == nil && websocket.CloseStatus(err) == -1 {
		h.log().Debug("websocket ended", "error", err)
	}
}

func (h *Hub) serve(ctx context.Context, c *websocket.Conn, since int64) error {
	// Subscribe before reading the table: an event committed in between is
	// then in both, and the id check drops the copy.
	if err := h.start(ctx); err != nil {
		c.Close(websocket.StatusInternalError, "database unavailable")
		return err
	}
	sub := h.subscribe()
	defer h.unsubscribe(sub)
	last, err := h.LastID(ctx, h.DB)
	if err != nil {
		c.Close(websocket.StatusInternalError, "database unavailable")
		return err
	}
	send := func(ev Event) error {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		b, _ := json.Marshal(ev)
		return c.Write(wctx, websocket.MessageText, b)
	}
	hello, _ := json.Marshal(map[string]any{"server": h.Name, "last": last})
	if err := send(Event{Kind: KindHello, Data: hello, At: nowMS()}); err != nil {
		return err
	}
	sent := since
	if since < 0 {
		sent = last
	}
	// catchUp sends the events after sent, up to at least upTo, from the
	// table: the backlog of a reconnecting client, or a gap in what the
	// poller handed over (it started after this client).
	catchUp := func(upTo int64) error {
		for sent < upTo {
			evs, covered, err := h.Since(ctx, sent, 500)
			if err != nil {
				c.Close(websocket.StatusInternalError, "database unavailable")
				return err
			}
			if !covered {
				if err := send(Event{Kind: KindReset, Data: json.RawMessage(`{}`), At: nowMS()}); err != nil {
					return err
				}
				// The client reloads its state, which includes everything
				// up to now: carry on from the newest event.
				sent = upTo
				if len(evs) > 0 {
					sent = max(sent, evs[len(evs)-1].ID)
				}
				return nil
			}
			if len(evs) == 0 {
				return nil
			}
			for _, ev := range evs {
				if err := send(ev); err != nil {
					return err
				}
				sent = ev.ID
			}
		}
		return nil
	}
	if err := catchUp(last); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.done:
			c.Close(websocket.StatusGoingAway, "server shutting down")
			return nil
		case <-sub.gone:
			c.Close(websocket.StatusTryAgainLater, "too slow; reconnect with since")
			return errors.New("appkit: websocket client too slow")
		case ev := <-sub.ch:
			switch {
			case ev.ID <= sent:
				continue
			case ev.ID > sent+1:
				if err := catchUp(ev.ID); err != nil {
					return err
				}
				continue
			}
			if err := send(ev); err != nil {
				return err
			}
			sent = ev.ID
		}
	}
}

//go:embed hub.js
var clientJS []byte

// ClientJS serves the browser client (plain JS, no build step):
//
//	<script src="/appkit/hub.js"></script>
//	appkit.connect({url: "/websocket", since: lastId, onEvent: ev => ...})
func ClientJS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(clientJS)
	})
}
