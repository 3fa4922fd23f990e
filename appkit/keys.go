package appkit

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// KeySize is the size of a session key: AES-256.
const KeySize = 32

// ErrNoKeys means a key source held no key.
var ErrNoKeys = errors.New("appkit: no session keys")

// KeyRing is an ordered set of AES-256-GCM keys: the first (newest) seals,
// every one opens. Rotation prepends a key and keeps the old ones for as
// long as cookies sealed with them may live, so it logs nobody out.
type KeyRing struct {
	keys []ringKey
}

type ringKey struct {
	id   [4]byte // first bytes of SHA-256(key): names the key in a sealed value
	aead cipher.AEAD
}

// NewKeyRing returns a ring of raw 32-byte keys, newest first.
func NewKeyRing(keys ...[]byte) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	r := &KeyRing{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("appkit: session key %d is %d bytes, want %d (AES-256)", i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("appkit: session key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("appkit: session key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(k)
		rk := ringKey{aead: aead}
		copy(rk.id[:], sum[:4])
		r.keys = append(r.keys, rk)
	}
	return r, nil
}

// ParseKeys reads base64 keys (standard or URL alphabet, padded or not),
// one per line, newest first; blank lines and lines starting with # are
// skipped, and commas or spaces also separate keys (for an env var).
func ParseKeys(text string) (*KeyRing, error) {
	var raw [][]byte
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for f := range strings.FieldsFuncSeq(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			k, err := decodeKey(f)
			if err != nil {
				return nil, fmt.Errorf("appkit: session key %d: %w", len(raw)+1, err)
			}
			raw = append(raw, k)
		}
	}
	return NewKeyRing(raw...)
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("not base64")
}

// GenerateKey returns a new random key, base64 encoded, for a key file.
func GenerateKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(KeySize))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

// sealVersion is the first byte of a sealed value: the format.
const sealVersion = 1

// Seal encrypts and authenticates plaintext with the newest key; ad (the
// cookie's name) is authenticated too, so a value cannot be moved to
// another cookie. The result is URL-safe base64: version, key id, nonce,
// ciphertext.
func (r *KeyRing) Seal(ad string, plaintext []byte) string {
	k := r.keys[0]
	out := make([]byte, 0, 1+4+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, k.id[:]...)
	nonce := randomBytes(k.aead.NonceSize())
	out = append(out, nonce...)
	out = k.aead.Seal(out, nonce, plaintext, []byte(ad))
	return base64.RawURLEncoding.EncodeToString(out)
}

// ErrBadSeal means a sealed value did not open: tampered, truncated, made
// for another name, or sealed with a key no longer in the ring.
var ErrBadSeal = errors.New("appkit: sealed value does not open")

// Open decrypts a value made by Seal with any key of the ring; old reports
// that it was not the newest key, so the caller can reseal.
func (r *KeyRing) Open(ad, sealed string) (plaintext []byte, old bool, err error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < 5 || b[0] != sealVersion {
		return nil, false, ErrBadSeal
	}
	id, rest := b[1:5], b[5:]
	for i, k := range r.keys {
		if !bytes.Equal(k.id[:], id) || len(rest) < k.aead.NonceSize() {
			continue
		}
		p, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], []byte(ad))
		if err == nil {
			return p, i > 0, nil
		}
	}
	return nil, false, ErrBadSeal
}

// Len is the number of keys.
func (r *KeyRing) Len() int { return len(r.keys) }

// Keys is a source of the current key ring.
type Keys interface{ Ring() *KeyRing }

// StaticKeys is a ring that never changes.
type StaticKeys struct{ R *KeyRing }

func (s StaticKeys) Ring() *KeyRing { return s.R }

// KeysFromEnv parses the keys in environment variable name.
func KeysFromEnv(name string) (StaticKeys, error) {
	v := os.Getenv(name)
	if v == "" {
		return StaticKeys{}, fmt.Errorf("%w: $%s is empty", ErrNoKeys, name)
	}
	r, err := ParseKeys(v)
	if err != nil {
		return StaticKeys{}, fmt.Errorf("$%s: %w", name, err)
	}
	return StaticKeys{R: r}, nil
}

// KeyFile is a key ring read from a file, one base64 key per line, newest
// first: a mounted Kubernetes Secret is such a file. Run rereads it, so a
// rotated Secret takes effect without a restart.
type KeyFile struct {
	Path string
	// Every is how often Run rereads the file (default 10s).
	Every time.Duration
	Log   *slog.Logger

	ring atomic.Pointer[KeyRing]
	last []byte
}

// LoadKeyFile reads path; the file must hold at least one key.
func LoadKeyFile(path string) (*KeyFile, error) {
	k := &KeyFile{Path: path}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeyFile) reload() error {
	b, err := os.ReadFile(k.Path)
	if err != nil {
		return fmt.Errorf("appkit: session keys: %w", err)
	}
	if k.last != nil && bytes.Equal(b, k.last) {
		return nil
	}
	r, err := ParseKeys(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", k.Path, err)
	}
	k.ring.Store(r)
	k.last = b
	return nil
}

// Ring returns the current ring.
func (k *KeyFile) Ring() *KeyRing { return k.ring.Load() }

// Run rereads the file until ctx ends. A file that no longer parses keeps
// the previous ring (and says so): a half-written Secret must not log
// everyone out.
func (k *KeyFile) Run(ctx context.Context) error {
	every := k.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	log := k.Log
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		before := k.Ring()
		if err := k.reload(); err != nil {
			log.Error("session keys not reloaded; keeping the previous ones", "error", err)
			continue
		}
		if r := k.Ring(); r != before {
			log.Info("session keys reloaded", "path", k.Path, "keys", r.Len())
		}
	}
}
