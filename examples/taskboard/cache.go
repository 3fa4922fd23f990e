package taskboard

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/tandemproxy/tandem/appkit"
)

// board is the in-memory cache of the board that GET /api/board serves:
// loaded from the database at start and every refresh period, and kept
// current between loads by the hub's events (from either instance).
type board struct {
	mu      sync.RWMutex
	tasks   map[int64]Task
	eventID int64 // the last event the cache reflects
	loaded  bool
}

// load replaces the cache with the database's state, read in one
// snapshot with the event id it corresponds to.
func (b *board) load(ctx context.Context, db *appkit.DB) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == appkit.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("load board: %w", err)
	}
	defer tx.Rollback()
	var eventID int64
	if err := tx.QueryRowContext(ctx, `SELECT n FROM appkit_counter WHERE name = 'events'`).Scan(&eventID); err != nil {
		return fmt.Errorf("load board: %w", err)
	}
	tasks, err := loadTasks(ctx, tx)
	if err != nil {
		return fmt.Errorf("load board: %w", err)
	}
	m := make(map[int64]Task, len(tasks))
	for _, t := range tasks {
		m[t.ID] = t
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Events that arrived while loading are newer than the snapshot: keep
	// their tasks.
	for id, t := range b.tasks {
		if cur, ok := m[id]; (!ok && b.eventID > eventID) || (ok && t.Version > cur.Version) {
			m[id] = t
		}
	}
	b.tasks, b.loaded = m, true
	b.eventID = max(b.eventID, eventID)
	return nil
}

// upsert applies a task's new state unless the cache has a newer one.
func (b *board) upsert(t Task) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.upsertLocked(t)
}

func (b *board) upsertLocked(t Task) {
	if b.tasks == nil {
		b.tasks = map[int64]Task{}
	}
	if cur, ok := b.tasks[t.ID]; ok && cur.Version > t.Version {
		return
	}
	b.tasks[t.ID] = t
}

// event applies a hub event, in id order.
func (b *board) event(ev appkit.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var t Task
	if json.Unmarshal(ev.Data, &t) == nil && t.ID != 0 {
		b.upsertLocked(t)
	}
	b.eventID = max(b.eventID, ev.ID)
}

// lastEvent is the last event the cache reflects.
func (b *board) lastEvent() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.eventID
}

// snapshot returns the live tasks in id order and the event id they
// reflect: a page that shows them resumes the hub from that id.
func (b *board) snapshot() ([]Task, int64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Task, 0, len(b.tasks))
	for _, t := range b.tasks {
		if !t.Deleted {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, c Task) int { return int(a.ID - c.ID) })
	return out, b.eventID, b.loaded
}
