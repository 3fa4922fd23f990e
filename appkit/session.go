package appkit

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Session is what a session cookie holds. It lives entirely in the cookie,
// sealed by the key ring, so either instance can read it: nothing about a
// login is kept in one instance's memory.
type Session struct {
	UserID int64             `json:"u,omitempty"`
	User   string            `json:"n,omitempty"`
	CSRF   string            `json:"c"`
	Issued int64             `json:"i"` // Unix seconds, renewed while in use
	Values map[string]string `json:"v,omitempty"`
}

// LoggedIn reports whether the session belongs to a user.
func (s *Session) LoggedIn() bool { return s != nil && s.UserID != 0 }

// Sessions reads and writes sealed session cookies and checks CSRF tokens.
type Sessions struct {
	Keys Keys
	// Name is the cookie's name (default "session"); it is authenticated
	// with the value.
	Name string
	// MaxAge ends a session unused for this long (default 12h).
	MaxAge time.Duration
	// Secure sets the cookie's Secure attribute. It is also set for a
	// request that came over TLS, or through a proxy that says so with
	// X-Forwarded-Proto: https (believing a client that lies about it only
	// makes its own cookie stricter).
	Secure bool
}

// CSRFHeader and CSRFField carry the CSRF token: the header for scripts,
// the form field for HTML forms.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
)

func (m *Sessions) name() string {
	if m.Name != "" {
		return m.Name
	}
	return "session"
}

func (m *Sessions) maxAge() time.Duration {
	if m.MaxAge > 0 {
		return m.MaxAge
	}
	return 12 * time.Hour
}

type sessionKey struct{}

// SessionFrom returns the request's session, set by Middleware.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

func newCSRF() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// load opens the request's cookie: the session, and whether it should be
// written again (sealed with an older key, or half its life gone).
func (m *Sessions) load(r *http.Request) (*Session, bool) {
	c, err := r.Cookie(m.name())
	if err != nil {
		return nil, false
	}
	p, old, err := m.Keys.Ring().Open(m.name(), c.Value)
	if err != nil {
		return nil, false
	}
	var s Session
	if err := json.Unmarshal(p, &s); err != nil || s.CSRF == "" {
		return nil, false
	}
	age := time.Since(time.Unix(s.Issued, 0))
	if age > m.maxAge() || age < -time.Minute {
		return nil, false
	}
	return &s, old || age > m.maxAge()/2
}

// Middleware puts the session in the request's context, starting an
// anonymous one (with its CSRF token) for a visitor without a valid
// cookie, and refuses with 403 an unsafe request whose CSRF token does not
// match its session's.
func (m *Sessions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, rewrite := m.load(r)
		fresh := s == nil
		if fresh {
			s = &Session{CSRF: newCSRF()}
			rewrite = true
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		default:
			tok := r.Header.Get(CSRFHeader)
			if tok == "" {
				tok = r.PostFormValue(CSRFField)
			}
			if fresh || subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
				http.Error(w, "forbidden: missing or invalid CSRF token (reload the page)", http.StatusForbidden)
				return
			}
		}
		if rewrite {
			m.Save(w, r, s)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// Save seals s (renewing its age) into the response's cookie; call it
// before writing the body.
func (m *Sessions) Save(w http.ResponseWriter, r *http.Request, s *Session) {
	s.Issued = time.Now().Unix()
	b, _ := json.Marshal(s)
	http.SetCookie(w, &http.Cookie{
		Name:     m.name(),
		Value:    m.Keys.Ring().Seal(m.name(), b),
		Path:     "/",
		MaxAge:   int(m.maxAge() / time.Second),
		HttpOnly: true,
		Secure:   m.Secure || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
		SameSite: http.SameSiteLaxMode,
	})
}

// Login starts a session for the user with a new CSRF token (a token known
// before the login is worth nothing after it) and writes its cookie.
func (m *Sessions) Login(w http.ResponseWriter, r *http.Request, userID int64, user string) *Session {
	s := &Session{UserID: userID, User: user, CSRF: newCSRF()}
	m.Save(w, r, s)
	return s
}

// Logout replaces the session with an anonymous one. Sessions live in the
// cookie only: a copy kept elsewhere stays valid until MaxAge.
func (m *Sessions) Logout(w http.ResponseWriter, r *http.Request) *Session {
	s := &Session{CSRF: newCSRF()}
	m.Save(w, r, s)
	return s
}
