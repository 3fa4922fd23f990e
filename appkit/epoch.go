package appkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EpochHeader is the header in which the gateway sends its group's switch
// counter with every request it proxies.
const EpochHeader = "X-Tandem-Epoch"

// RoleHeader is the header in which the gateway's health checks tell a
// server of a failover group its role in the decision in force:
// "active; epoch=7" or "standby; epoch=7". The gateway never passes a
// client's own on.
const RoleHeader = "X-Tandem-Role"

// Role is an instance's role: what the gateway's checks say, else what
// its traffic shows (see Epochs.Role).
type Role string

const (
	// RoleActive: the gateway's latest check called it active, or it
	// served a request carrying the newest epoch recently, or holds a
	// websocket opened with it.
	RoleActive Role = "active"
	// RoleStandby: the gateway's latest check called it standby, or it
	// has seen the gateway but not lately with the newest epoch.
	RoleStandby Role = "standby"
	// RoleUnknown: no word from the gateway yet (no check with a role, no
	// epoch here or, with a DB, at the other instance), and the instance
	// was not told it runs on its own.
	RoleUnknown Role = "unknown"
)

// ParseRole reads the role and epoch a gateway's health check carries. A
// request that carries X-Tandem-Epoch came through the gateway's proxy, not
// from its checks: its role header, if any, is not the gateway's.
func ParseRole(r *http.Request) (Role, uint64, bool) {
	v := r.Header.Get(RoleHeader)
	if v == "" || r.Header.Get(EpochHeader) != "" {
		return "", 0, false
	}
	role, params, _ := strings.Cut(v, ";")
	var epoch uint64
	for p := range strings.SplitSeq(params, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "epoch" {
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return "", 0, false
			}
			epoch = n
		}
	}
	switch Role(strings.TrimSpace(role)) {
	case RoleActive:
		return RoleActive, epoch, true
	case RoleStandby:
		return RoleStandby, epoch, true
	}
	return "", 0, false
}

// checkWord is the role the gateway's latest check gave.
type checkWord struct {
	role  Role
	epoch uint64
	at    time.Time
}

// ErrFenced is returned for a write that carries an epoch older than the
// newest one seen: it was routed by a gateway whose view is out of date.
var ErrFenced = errors.New("write fenced: it carries an older gateway epoch than the newest seen")

// FenceError says which epochs were compared; it matches ErrFenced.
type FenceError struct{ Got, Newest uint64 }

func (e *FenceError) Error() string {
	return fmt.Sprintf("write refused: it carries gateway epoch %d but epoch %d is newer, so this server is no longer the active one (retry through the gateway)", e.Got, e.Newest)
}

func (e *FenceError) Is(target error) bool { return target == ErrFenced }

// Epochs tracks the gateway's epochs an instance sees: it infers the role,
// shares the newest epoch with the other instance through the database,
// and fences writes.
//
// The newest epoch only grows, except with ResetAfter: tandem's file-mode
// gateway counts from zero again when it restarts (the Kubernetes Lease
// keeps counting), and without a reset a persisted newer epoch would
// refuse every write after such a restart.
type Epochs struct {
	// DB, when set, persists the newest epoch (table appkit_fence) so
	// that both instances agree on it.
	DB *DB
	// Instance names this instance. The instance that first sees an epoch
	// is recorded as its server, and a write with an older epoch that
	// reaches that server is accepted: it is a late request (a gateway
	// retry keeps its first attempt's epoch) on the right server. Empty:
	// every older epoch is refused.
	Instance string
	// Window is how long a request with the newest epoch keeps the role
	// active (default 5s).
	Window time.Duration
	// Standalone makes the role active when no gateway was ever seen
	// (the app runs on its own).
	Standalone bool
	// ResetAfter, when positive, accepts a lower epoch once the newest one
	// has not been seen by any instance for this long (a restarted
	// gateway). Zero never goes back.
	ResetAfter time.Duration
	Log        *slog.Logger

	newest      atomic.Uint64
	seen        atomic.Bool
	activeAt    atomic.Int64  // UnixNano of the last request with the newest epoch
	activeEpoch atomic.Uint64 // and that epoch
	check       atomic.Pointer[checkWord]
	touched     atomic.Int64 // UnixNano of the last seen_at refresh in the database

	mu    sync.Mutex
	holds map[uint64]int // open long-lived connections by epoch
	kick  chan struct{}
}

func (e *Epochs) window() time.Duration {
	if e.Window > 0 {
		return e.Window
	}
	return 5 * time.Second
}

func (e *Epochs) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// ParseEpoch reads the gateway's epoch from r.
func ParseEpoch(r *http.Request) (uint64, bool) {
	v := r.Header.Get(EpochHeader)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// Observe records the epoch r carries, if any, and returns it; a gateway
// health check's role (ObserveCheck) is recorded too.
func (e *Epochs) Observe(r *http.Request) (uint64, bool) {
	n, ok := ParseEpoch(r)
	if !ok {
		e.ObserveCheck(r)
		return 0, false
	}
	e.seen.Store(true)
	if e.raise(n) {
		e.persistSoon()
	}
	if n >= e.newest.Load() {
		e.activeAt.Store(time.Now().UnixNano())
		e.activeEpoch.Store(n)
	}
	return n, true
}

// ObserveCheck records the role a gateway's health check gives (RoleHeader)
// and reports whether r carried one. An active check's epoch is the newest
// (this instance is its server); a standby check changes no epoch.
func (e *Epochs) ObserveCheck(r *http.Request) bool {
	role, n, ok := ParseRole(r)
	if !ok {
		return false
	}
	e.seen.Store(true)
	if role == RoleActive && e.raise(n) {
		e.persistSoon()
	}
	e.check.Store(&checkWord{role: role, epoch: n, at: time.Now()})
	return true
}

// raise makes n the newest epoch if it is newer and reports whether it was.
func (e *Epochs) raise(n uint64) bool {
	for {
		cur := e.newest.Load()
		if n <= cur {
			return false
		}
		if e.newest.CompareAndSwap(cur, n) {
			return true
		}
	}
}

// kickCh is Run's wake-up: made on first use by either side, so that an
// epoch observed before Run started is recorded when it does.
func (e *Epochs) kickCh() chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kick == nil {
		e.kick = make(chan struct{}, 1)
	}
	return e.kick
}

func (e *Epochs) persistSoon() {
	select {
	case e.kickCh() <- struct{}{}:
	default:
	}
}

// Newest is the newest epoch seen (here or, with a DB, by either instance).
func (e *Epochs) Newest() uint64 { return e.newest.Load() }

// Hold counts a long-lived connection (a websocket) opened with epoch as
// serving while it is open; call the returned func when it closes. The
// gateway closes such connections when the instance loses the role.
func (e *Epochs) Hold(epoch uint64) func() {
	e.mu.Lock()
	if e.holds == nil {
		e.holds = map[uint64]int{}
	}
	e.holds[epoch]++
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			if e.holds[epoch]--; e.holds[epoch] <= 0 {
				delete(e.holds, epoch)
			}
			e.mu.Unlock()
		})
	}
}

// Role is the instance's role. The gateway's word comes first: while its
// checks carry a role (every interval, so within Window of the last one)
// the role is what the latest said, unless traffic carrying a newer epoch
// has come since (a switch to this instance that the next check will
// confirm). Without it (no check with a role lately: an older gateway, or
// none) the role is inferred from the traffic: active while requests or
// websockets carry the newest epoch, standby once a newer one went to the
// other instance.
func (e *Epochs) Role() Role {
	if w := e.check.Load(); w != nil && time.Since(w.at) < e.window() {
		if w.role == RoleActive {
			return RoleActive
		}
		if e.activeEpoch.Load() > w.epoch && time.Since(time.Unix(0, e.activeAt.Load())) < e.window() {
			return RoleActive
		}
		return RoleStandby
	}
	if !e.seen.Load() {
		switch {
		case e.Standalone:
			return RoleActive
		case e.newest.Load() == 0:
			return RoleUnknown
		default:
			// The other instance records the gateway's epochs: it gets the
			// traffic, this one only health checks.
			return RoleStandby
		}
	}
	newest := e.newest.Load()
	if time.Since(time.Unix(0, e.activeAt.Load())) < e.window() {
		return RoleActive
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ep, n := range e.holds {
		if ep >= newest && n > 0 {
			return RoleActive
		}
	}
	return RoleStandby
}

// Active reports whether the role is active: background jobs that must run
// on one instance only ask this.
func (e *Epochs) Active() bool { return e.Role() == RoleActive }

// Middleware observes the epoch of every request.
func (e *Epochs) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.Observe(r)
		next.ServeHTTP(w, r)
	})
}

type epochKey struct{}

// EpochFrom returns the epoch the request carried, stored by Fence.
func EpochFrom(ctx context.Context) (uint64, bool) {
	n, ok := ctx.Value(epochKey{}).(uint64)
	return n, ok
}

// Fence refuses, with 409 and a message that says why, an unsafe request
// (not GET, HEAD, OPTIONS, TRACE) that carries an epoch older than the
// newest seen by either instance, unless it reached the newest epoch's
// server (see Instance). Requests without the header (no gateway in
// front) pass. It observes every request as Middleware does.
//
// The check runs before the handler; for a check that holds until the
// write commits, call FenceTx inside the write's transaction.
func (e *Epochs) Fence(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := e.Observe(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), epochKey{}, n))
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
			next.ServeHTTP(w, r)
			return
		}
		if err := e.Check(r.Context(), n); err != nil {
			if errors.Is(err, ErrFenced) {
				e.log().Warn("write fenced", "method", r.Method, "path", r.URL.Path, "error", err)
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			e.log().Error("fence check failed", "error", err)
			http.Error(w, "service unavailable: cannot check the gateway epoch", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Check returns a *FenceError if epoch n is older than the newest one
// known here or in the database, unless this instance is the newest
// epoch's server (see Instance). A newer n becomes the newest, and this
// instance its server.
func (e *Epochs) Check(ctx context.Context, n uint64) error {
	if newest := e.newest.Load(); n < newest && e.DB == nil {
		return &FenceError{Got: n, Newest: newest}
	}
	if e.DB == nil {
		return nil
	}
	f, err := e.advance(ctx, n)
	if err != nil {
		return err
	}
	if f.epoch > n {
		if e.Instance != "" && f.owner == e.Instance {
			// A late request routed before the switch (a gateway retry
			// carries the epoch of its first attempt) that reached the
			// newest epoch's server anyway: writing here splits nothing.
			return nil
		}
		if e.ResetAfter > 0 && time.Since(time.UnixMilli(f.seenAt)) > e.ResetAfter {
			// Nobody has seen the newer epoch for a while: the gateway
			// was restarted and counts again from its start.
			res, err := e.DB.ExecContext(ctx, `UPDATE appkit_fence SET epoch = $1, seen_at_ms = $2, owner = $3 WHERE id = 1 AND epoch = $4`,
				int64(n), nowMS(), e.Instance, int64(f.epoch))
			if err != nil {
				return fmt.Errorf("appkit: reset fence epoch: %w", err)
			}
			if k, _ := res.RowsAffected(); k == 1 {
				e.log().Warn("gateway epoch went back; newest epoch reset", "from", f.epoch, "to", n, "unseen_for", time.Since(time.UnixMilli(f.seenAt)).Round(time.Millisecond))
				e.newest.Store(n)
				return nil
			}
			return e.Check(ctx, n)
		}
		e.raise(f.epoch)
		return &FenceError{Got: n, Newest: f.epoch}
	}
	// The newest epoch is in use: say so, at most once a second, so that
	// ResetAfter measures silence and not traffic.
	if now := time.Now(); now.Sub(time.Unix(0, e.touched.Load())) > time.Second {
		e.touched.Store(now.UnixNano())
		if _, err := e.DB.ExecContext(ctx, `UPDATE appkit_fence SET seen_at_ms = $1 WHERE id = 1 AND epoch = $2`, nowMS(), int64(n)); err != nil {
			return fmt.Errorf("appkit: touch fence epoch: %w", err)
		}
	}
	return nil
}

// fence is the shared row: the newest epoch, when it was last seen in
// use, and the instance that saw it first (its server).
type fence struct {
	epoch  uint64
	seenAt int64
	owner  string
}

// advance raises the database's epoch to n if lower, making this instance
// its server, and returns the row.
func (e *Epochs) advance(ctx context.Context, n uint64) (fence, error) {
	var f fence
	var epoch int64
	// Usually the epoch is already there: read it without a write
	// transaction (on SQLite that would queue for the file's write lock).
	err := e.DB.QueryRowContext(ctx, `SELECT epoch, seen_at_ms, owner FROM appkit_fence WHERE id = 1`).Scan(&epoch, &f.seenAt, &f.owner)
	if err != nil {
		return fence{}, fmt.Errorf("appkit: fence epoch: %w", err)
	}
	if uint64(epoch) >= n {
		f.epoch = uint64(epoch)
		return f, nil
	}
	err = e.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE appkit_fence SET epoch = $1, seen_at_ms = $2, owner = $3 WHERE id = 1 AND epoch < $1`,
			int64(n), nowMS(), e.Instance); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT epoch, seen_at_ms, owner FROM appkit_fence WHERE id = 1`).Scan(&epoch, &f.seenAt, &f.owner)
	})
	if err != nil {
		return fence{}, fmt.Errorf("appkit: fence epoch: %w", err)
	}
	f.epoch = uint64(epoch)
	return f, nil
}

// FenceTx checks, inside the write's own transaction, that the request's
// epoch (stored in ctx by Fence) is still the newest, and keeps it so
// until the transaction ends: on PostgreSQL the fence row is share-locked,
// so a newer epoch cannot be recorded while the write is in flight; on
// SQLite the write transaction already excludes every other writer.
func (e *Epochs) FenceTx(ctx context.Context, tx *sql.Tx) error {
	n, ok := EpochFrom(ctx)
	if !ok || e.DB == nil {
		return nil
	}
	q := `SELECT epoch, owner FROM appkit_fence WHERE id = 1`
	if e.DB.Dialect == Postgres {
		q += ` FOR SHARE`
	}
	var epoch int64
	var owner string
	if err := tx.QueryRowContext(ctx, q).Scan(&epoch, &owner); err != nil {
		return fmt.Errorf("appkit: fence epoch: %w", err)
	}
	if uint64(epoch) > n && (e.Instance == "" || owner != e.Instance) {
		e.raise(uint64(epoch))
		return &FenceError{Got: n, Newest: uint64(epoch)}
	}
	return nil
}

// Run shares the newest epoch through the database until ctx ends: it
// records a newer local one at once and learns the other instance's every
// second, so a standby knows it is one even if it served nothing lately.
func (e *Epochs) Run(ctx context.Context) error {
	if e.DB == nil {
		<-ctx.Done()
		return nil
	}
	kick := e.kickCh()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
			// An observed epoch is newer than any known: record it.
			var f fence
			if f, err = e.advance(ctx, e.newest.Load()); err == nil {
				e.raise(f.epoch)
			}
		case <-t.C:
			var n int64
			if err = e.DB.QueryRowContext(ctx, `SELECT epoch FROM appkit_fence WHERE id = 1`).Scan(&n); err == nil {
				if !e.raise(uint64(n)) && e.ResetAfter > 0 && uint64(n) < e.newest.Load() && len(kick) == 0 {
					// The other instance reset it (a restarted gateway).
					e.newest.Store(uint64(n))
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			e.log().Warn("cannot share the gateway epoch", "error", err)
		}
	}
}
