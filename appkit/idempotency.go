package appkit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// IdempotencyHeader is the request header naming a write that may be sent
// more than once: the gateway replays a POST that carries one on the other
// instance when the first fails mid-request.
const IdempotencyHeader = "Idempotency-Key"

// Response is a stored answer to an idempotent write.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Write sends r, saying whether it is a replay of an earlier answer.
func (r Response) Write(w http.ResponseWriter, replayed bool) {
	if r.ContentType != "" {
		w.Header().Set("Content-Type", r.ContentType)
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(r.Status)
	w.Write(r.Body)
}

// ErrIdempotencyMismatch means a key was used again for a different request.
var ErrIdempotencyMismatch = errors.New("idempotency key reused for a different request")

// ErrBadIdempotencyKey means a key is empty, too long or not printable ASCII.
var ErrBadIdempotencyKey = errors.New("bad idempotency key: want 1 to 200 printable ASCII characters")

// ValidIdempotencyKey reports whether k is acceptable: 1 to 200 printable
// ASCII characters.
func ValidIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 200 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// Idempotent applies a write once per (scope, key). fn runs inside a
// transaction that also records the key and fn's response; a later call
// with the same key, from either instance, gets that response back
// (replayed true) without running fn. A call that arrives while the first
// is still in flight waits for it (PostgreSQL: the key's unique index;
// SQLite: the write lock). fingerprint identifies the request (method,
// path, body): the same key with another fingerprint is
// ErrIdempotencyMismatch. An error from fn rolls everything back, key
// included, so the client may retry.
func (db *DB) Idempotent(ctx context.Context, scope, key string, fingerprint []byte,
	fn func(tx *sql.Tx) (Response, error)) (resp Response, replayed bool, err error) {
	if !ValidIdempotencyKey(key) {
		return Response{}, false, ErrBadIdempotencyKey
	}
	sum := sha256.Sum256(fingerprint)
	fp := hex.EncodeToString(sum[:16])
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO appkit_idempotency (scope, key, fingerprint, status, content_type, body, at_ms)
			VALUES ($1, $2, $3, 0, '', $4, $5) ON CONFLICT (scope, key) DO NOTHING`, scope, key, fp, []byte{}, nowMS())
		if err != nil {
			return fmt.Errorf("appkit: idempotency key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Applied before (the insert waited for it to commit).
			var storedFP string
			err := tx.QueryRowContext(ctx, `SELECT fingerprint, status, content_type, body FROM appkit_idempotency WHERE scope = $1 AND key = $2`,
				scope, key).Scan(&storedFP, &resp.Status, &resp.ContentType, &resp.Body)
			if err != nil {
				return fmt.Errorf("appkit: idempotency key: %w", err)
			}
			if storedFP != fp {
				return fmt.Errorf("appkit: idempotency key %q: %w", key, ErrIdempotencyMismatch)
			}
			replayed = true
			return nil
		}
		if resp, err = fn(tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE appkit_idempotency SET status = $1, content_type = $2, body = $3 WHERE scope = $4 AND key = $5`,
			resp.Status, resp.ContentType, resp.Body, scope, key); err != nil {
			return fmt.Errorf("appkit: idempotency key: %w", err)
		}
		return nil
	})
	if err != nil {
		return Response{}, false, err
	}
	return resp, replayed, nil
}

// PruneIdempotency forgets keys older than age; a client retrying after
// that is a new request.
func (db *DB) PruneIdempotency(ctx context.Context, age time.Duration) (int64, error) {
	res, err := db.ExecContext(ctx, `DELETE FROM appkit_idempotency WHERE at_ms < $1`, time.Now().Add(-age).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("appkit: prune idempotency keys: %w", err)
	}
	return res.RowsAffected()
}
