package backend

import (
	"sync"
	"sync/atomic"
	"time"
)

// Waiter is one try waiting for a server's response head. The gateway
// abandons it when the server is marked down or loses the active role,
// so that it does not stay parked on a server nobody else sends to.
type Waiter struct {
	abort     func()
	pinned    bool
	abandoned atomic.Bool
}

// Abandoned reports whether the try was abandoned: its connection's
// deadline was moved to the past, and the error that follows is the
// gateway's doing, not the server's answer.
func (w *Waiter) Abandoned() bool { return w != nil && w.abandoned.Load() }

// waiting is the set of a server's waiters and what "no progress"
// detection needs: when a response head last came, and since when
// requests have been waiting.
type waiting struct {
	mu  sync.Mutex
	set map[*Waiter]struct{}
	// gen counts role losses; a try records it when it picks the server
	// and is abandoned at once if it changed before the try waits.
	gen atomic.Uint64
	// lastHead is when a response head last came (unix nanoseconds).
	lastHead atomic.Int64
	// since is when the set last became non-empty (unix nanoseconds).
	since int64
	// stall, when set, runs no-progress detection while the set is non-empty.
	stall      *time.Timer
	stallAfter time.Duration
	onStall    func(s *Server, waited time.Duration, n int)
}

// RoleGen returns the count of role losses, for Wait.
func (s *Server) RoleGen() uint64 { return s.wait.gen.Load() }

// Answered records that a response head came from the server. The time
// is kept to a millisecond: a store is skipped while the one kept is less
// than that older, since every request on every core stores here, and a
// store from another core costs the cache line (AnsweredSince is asked of
// spans of seconds).
func (s *Server) Answered(at time.Time) {
	if t := at.UnixNano(); t-s.wait.lastHead.Load() >= int64(time.Millisecond) {
		s.wait.lastHead.Store(t)
	}
}

// AnsweredSince reports whether a response head came from s at t or later.
func (s *Server) AnsweredSince(t time.Time) bool { return s.wait.lastHead.Load() >= t.UnixNano() }

// Wait registers a try waiting for a response head. abort must interrupt
// the try (move its connection's deadline to the past) and must not
// block; it runs at most once, under the set's lock, either now (the
// server is down, or lost the role since gen was read and the try is not
// pinned) or on a later Abandon. stallAfter > 0 arms no-progress
// detection: onStall runs, once, when requests have waited that long and
// no response head came meanwhile. Done must follow.
func (s *Server) Wait(gen uint64, pinned bool, stallAfter time.Duration, onStall func(*Server, time.Duration, int), abort func()) *Waiter {
	w := &Waiter{abort: abort, pinned: pinned}
	ws := &s.wait
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if s.State() == Down || !pinned && ws.gen.Load() != gen {
		w.abandoned.Store(true)
		abort()
		return w
	}
	if ws.set == nil {
		ws.set = map[*Waiter]struct{}{}
	}
	ws.set[w] = struct{}{}
	if len(ws.set) == 1 {
		ws.since = time.Now().UnixNano()
	}
	if stallAfter > 0 && ws.stall == nil {
		ws.stallAfter, ws.onStall = stallAfter, onStall
		ws.stall = time.AfterFunc(stallAfter, s.checkStall)
	}
	return w
}

// Done ends w's wait; head says whether a response head came.
func (s *Server) Done(w *Waiter, head bool) {
	if head {
		s.Answered(time.Now())
	}
	ws := &s.wait
	ws.mu.Lock()
	delete(ws.set, w)
	ws.mu.Unlock()
}

// Waiting returns how many tries wait for a response head.
func (s *Server) Waiting() int {
	s.wait.mu.Lock()
	defer s.wait.mu.Unlock()
	return len(s.wait.set)
}

// Abandon interrupts every try waiting for a response head from the
// server (role: only those that follow the active role, not pinned ones)
// and returns how many.
func (s *Server) Abandon(role bool) int {
	ws := &s.wait
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if role {
		ws.gen.Add(1)
	}
	n := 0
	for w := range ws.set {
		if role && w.pinned {
			continue
		}
		delete(ws.set, w)
		w.abandoned.Store(true)
		w.abort()
		n++
	}
	return n
}

// checkStall runs when the stall timer fires: requests waited stallAfter
// and no head came since they began, or since the last head; otherwise
// it looks again when that could first be true.
func (s *Server) checkStall() {
	ws := &s.wait
	ws.mu.Lock()
	n := len(ws.set)
	if n == 0 {
		ws.stall = nil
		ws.mu.Unlock()
		return
	}
	from := max(ws.since, ws.lastHead.Load())
	waited := time.Duration(time.Now().UnixNano() - from)
	if waited < ws.stallAfter {
		ws.stall.Reset(ws.stallAfter - waited)
		ws.mu.Unlock()
		return
	}
	ws.stall = nil
	onStall := ws.onStall
	ws.mu.Unlock()
	if onStall != nil && s.State() != Down {
		onStall(s, waited, n)
	}
}
