package taskboard

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Task is one card on the board.
type Task struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Status    string `json:"status"` // todo, doing, done
	CreatedBy string `json:"createdBy"`
	CreatedAt int64  `json:"createdAt"`
	UpdatedAt int64  `json:"updatedAt"`
	DueAt     *int64 `json:"dueAt,omitempty"`
	Overdue   bool   `json:"overdue"`
	Version   int64  `json:"version"`
	Deleted   bool   `json:"deleted,omitempty"`
}

// Statuses are the board's columns, in order.
var Statuses = []string{"todo", "doing", "done"}

func validStatus(s string) bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

const taskColumns = `t.id, t.title, t.status, u.name, t.created_at_ms, t.updated_at_ms, t.due_at_ms, t.overdue, t.version`

type scanner interface{ Scan(dest ...any) error }

func scanTask(s scanner) (Task, error) {
	var t Task
	var due sql.NullInt64
	var overdue int64
	if err := s.Scan(&t.ID, &t.Title, &t.Status, &t.CreatedBy, &t.CreatedAt, &t.UpdatedAt, &due, &overdue, &t.Version); err != nil {
		return Task{}, err
	}
	if due.Valid {
		t.DueAt = &due.Int64
	}
	t.Overdue = overdue != 0
	return t, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadTask(ctx context.Context, q querier, id int64) (Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks t JOIN users u ON u.id = t.created_by WHERE t.id = $1`, id))
	if err != nil {
		return Task{}, fmt.Errorf("task %d: %w", id, err)
	}
	return t, nil
}

func loadTasks(ctx context.Context, q querier) ([]Task, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks t JOIN users u ON u.id = t.created_by ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("tasks: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return out, nil
}

// Passwords are hashed with PBKDF2-HMAC-SHA256 (crypto/pbkdf2, standard
// library), a 16-byte random salt and, by default, 600,000 iterations
// (OWASP's 2023 figure for this construction). The stored form names the
// algorithm and iterations, so they can be raised later without breaking
// stored hashes: pbkdf2-sha256$ITER$SALT$HASH (base64).
const DefaultIterations = 600_000

func hashPassword(password string, iter int) (string, error) {
	if iter <= 0 {
		iter = DefaultIterations
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	h, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", iter, enc.EncodeToString(salt), enc.EncodeToString(h)), nil
}

var errBadHash = errors.New("unknown password hash format")

func checkPassword(stored, password string) (bool, error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false, errBadHash
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false, errBadHash
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is checked against when the user does not exist, so that a
// login takes as long either way and does not tell who has an account.
// It is made on first use: every tandem command links this package.
var dummyHash = sync.OnceValue(func() string {
	h, _ := hashPassword("not a password", DefaultIterations)
	return h
})

func validName(n string) bool {
	if len(n) < 2 || len(n) > 32 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// createUser adds a user; an existing name is errUserExists.
func createUser(ctx context.Context, db *sql.DB, name, password string, iter int) (int64, error) {
	h, err := hashPassword(password, iter)
	if err != nil {
		return 0, err
	}
	var id int64
	err = db.QueryRowContext(ctx, `INSERT INTO users (name, password, created_at_ms) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING RETURNING id`, name, h, time.Now().UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errUserExists
	}
	if err != nil {
		return 0, fmt.Errorf("create user %s: %w", name, err)
	}
	return id, nil
}

var errUserExists = errors.New("that name is taken")

// authenticate returns the user's id if the password matches.
func authenticate(ctx context.Context, db *sql.DB, name, password string) (int64, bool, error) {
	var id int64
	var stored string
	err := db.QueryRowContext(ctx, `SELECT id, password FROM users WHERE name = $1`, name).Scan(&id, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		checkPassword(dummyHash(), password)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("login: %w", err)
	}
	ok, err := checkPassword(stored, password)
	if err != nil {
		return 0, false, fmt.Errorf("login %s: %w", name, err)
	}
	return id, ok, nil
}
