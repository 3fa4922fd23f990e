// Package pgsql is a small database/sql driver over a single pgx connection.
//
// pgx's own database/sql adapter (pgx/v5/stdlib) imports pgxpool, which
// pulls modules (jackc/puddle, x/sync) that this repository does not carry;
// database/sql pools connections itself, so one pgx.Conn per driver
// connection is all that is needed. Swapping this for stdlib.OpenDB is a
// one-line change in appkit.Open if those modules are ever added.
package pgsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Open returns a database/sql handle for the PostgreSQL URL or keyword DSN.
func Open(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgsql: %w", err)
	}
	return sql.OpenDB(&connector{cfg: cfg}), nil
}

type connector struct{ cfg *pgx.ConnConfig }

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := pgx.ConnectConfig(ctx, c.cfg.Copy())
	if err != nil {
		return nil, err
	}
	return &conn{c: pc, lastUsed: time.Now()}, nil
}

func (c *connector) Driver() driver.Driver { return drv{} }

type drv struct{}

func (drv) Open(string) (driver.Conn, error) {
	return nil, errors.New("pgsql: use Open, not sql.Open")
}

type conn struct {
	c        *pgx.Conn
	lastUsed time.Time
}

var (
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement that runs its text on each use: pgx
// already caches prepared statements per connection.
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	if c.c.IsClosed() {
		return nil, driver.ErrBadConn
	}
	return &stmt{c: c, query: query}, nil
}

func (c *conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.c.Close(ctx)
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.c.IsClosed() {
		return nil, driver.ErrBadConn
	}
	var o pgx.TxOptions
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		o.IsoLevel = pgx.ReadUncommitted
	case sql.LevelReadCommitted:
		o.IsoLevel = pgx.ReadCommitted
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		o.IsoLevel = pgx.RepeatableRead
	case sql.LevelSerializable:
		o.IsoLevel = pgx.Serializable
	default:
		return nil, fmt.Errorf("pgsql: unsupported isolation level %v", opts.Isolation)
	}
	if opts.ReadOnly {
		o.AccessMode = pgx.ReadOnly
	}
	tx, err := c.c.BeginTx(ctx, o)
	if err != nil {
		if pgconn.SafeToRetry(err) {
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	// database/sql ends the transaction with a background context when
	// the caller's ends; pgx needs a live one to send ROLLBACK.
	return txn{tx: tx}, nil
}

type txn struct{ tx pgx.Tx }

func (t txn) Commit() error   { return t.tx.Commit(context.Background()) }
func (t txn) Rollback() error { return t.tx.Rollback(context.Background()) }

func args(nv []driver.NamedValue) []any {
	out := make([]any, len(nv))
	for i, v := range nv {
		out[i] = v.Value
	}
	return out
}

func (c *conn) ExecContext(ctx context.Context, query string, nv []driver.NamedValue) (driver.Result, error) {
	if c.c.IsClosed() {
		return nil, driver.ErrBadConn
	}
	tag, err := c.c.Exec(ctx, query, args(nv)...)
	if err != nil {
		if pgconn.SafeToRetry(err) {
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

func (c *conn) QueryContext(ctx context.Context, query string, nv []driver.NamedValue) (driver.Rows, error) {
	if c.c.IsClosed() {
		return nil, driver.ErrBadConn
	}
	r, err := c.c.Query(ctx, query, args(nv)...)
	if err != nil {
		if pgconn.SafeToRetry(err) {
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	// Read the first row now: an error in the statement shows here, and
	// the column names are known either way.
	more := r.Next()
	if err := r.Err(); err != nil {
		r.Close()
		return nil, err
	}
	return &rows{r: r, peeked: true, more: more}, nil
}

func (c *conn) Ping(ctx context.Context) error {
	if c.c.IsClosed() {
		return driver.ErrBadConn
	}
	if err := c.c.Ping(ctx); err != nil {
		c.Close()
		return driver.ErrBadConn
	}
	return nil
}

// ResetSession drops a connection left inside a transaction or broken, and
// pings one idle for over a second (a restarted server closed it).
func (c *conn) ResetSession(ctx context.Context) error {
	if c.c.IsClosed() || c.c.PgConn().TxStatus() != 'I' {
		return driver.ErrBadConn
	}
	if time.Since(c.lastUsed) > time.Second {
		if err := c.c.PgConn().Ping(ctx); err != nil {
			return driver.ErrBadConn
		}
	}
	c.lastUsed = time.Now()
	return nil
}

func (c *conn) IsValid() bool { return !c.c.IsClosed() }

// CheckNamedValue passes every argument through: pgx encodes Go values,
// driver.Valuer and sql.Scanner types itself.
func (c *conn) CheckNamedValue(*driver.NamedValue) error { return nil }

type stmt struct {
	c     *conn
	query string
}

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }
func (s *stmt) Exec(v []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.query, named(v))
}
func (s *stmt) Query(v []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.query, named(v))
}
func (s *stmt) ExecContext(ctx context.Context, nv []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, nv)
}
func (s *stmt) QueryContext(ctx context.Context, nv []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, nv)
}

func named(v []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(v))
	for i, x := range v {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: x}
	}
	return out
}

type rows struct {
	r      pgx.Rows
	peeked bool
	more   bool
}

func (r *rows) Columns() []string {
	fds := r.r.FieldDescriptions()
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names
}

func (r *rows) Close() error {
	r.r.Close()
	return r.r.Err()
}

func (r *rows) Next(dest []driver.Value) error {
	more := r.more
	if r.peeked {
		r.peeked = false
	} else {
		more = r.r.Next()
	}
	if !more {
		if err := r.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	vals, err := r.r.Values()
	if err != nil {
		return err
	}
	for i, v := range vals {
		if dest[i], err = value(v); err != nil {
			return fmt.Errorf("pgsql: column %d: %w", i, err)
		}
	}
	return nil
}

// value turns what pgx decoded into one of database/sql's driver values.
func value(v any) (driver.Value, error) {
	switch x := v.(type) {
	case nil, int64, float64, bool, string, []byte, time.Time:
		return x, nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case driver.Valuer:
		return x.Value()
	case map[string]any, []any:
		// json and jsonb arrive decoded; hand back their text.
		return json.Marshal(x)
	default:
		return fmt.Sprint(x), nil
	}
}
