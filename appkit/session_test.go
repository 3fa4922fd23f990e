package appkit

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ring(t *testing.T, keys ...string) *KeyRing {
	t.Helper()
	r, err := ParseKeys(strings.Join(keys, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// whoami is an app behind the session middleware: it logs in on POST
// /login and says who the session belongs to on GET /.
func whoami(m *Sessions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := m.Login(w, r, 7, r.PostFormValue("user"))
		w.Write([]byte(s.CSRF))
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		s := SessionFrom(r.Context())
		w.Header().Set("X-CSRF", s.CSRF)
		if s.LoggedIn() {
			w.Write([]byte("user " + s.User))
			return
		}
		w.Write([]byte("anonymous"))
	})
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		mux.HandleFunc(m+" /write", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("written")) })
	}
	return m.Middleware(mux)
}

type exchange struct {
	status  int
	body    string
	cookies []*http.Cookie
	csrf    string
}

func do(t *testing.T, h http.Handler, method, path string, cookie *http.Cookie, form url.Values, header map[string]string) exchange {
	t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return exchange{status: w.Code, body: w.Body.String(), cookies: w.Result().Cookies(), csrf: w.Header().Get("X-CSRF")}
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login runs the anonymous GET then the login POST on h and returns the
// session cookie and its CSRF token.
func login(t *testing.T, h http.Handler, user string) (*http.Cookie, string) {
	t.Helper()
	anon := do(t, h, "GET", "/", nil, nil, nil)
	c := cookieNamed(anon.cookies, "session")
	if c == nil {
		t.Fatal("no session cookie for an anonymous visitor")
	}
	res := do(t, h, "POST", "/login", c, url.Values{"user": {user}, CSRFField: {anon.csrf}}, nil)
	if res.status != 200 {
		t.Fatalf("login: %d %s", res.status, res.body)
	}
	if res.body == anon.csrf {
		t.Error("the CSRF token did not change at login")
	}
	return cookieNamed(res.cookies, "session"), res.body
}

// TestSessionBothInstances: a cookie made by one instance is accepted by
// another with the same keys, and refused by one with other keys.
func TestSessionBothInstances(t *testing.T) {
	k := GenerateKey()
	master := whoami(&Sessions{Keys: StaticKeys{ring(t, k)}})
	failover := whoami(&Sessions{Keys: StaticKeys{ring(t, k)}})
	stranger := whoami(&Sessions{Keys: StaticKeys{ring(t, GenerateKey())}})
	c, csrf := login(t, master, "alice")
	if got := do(t, failover, "GET", "/", c, nil, nil); got.body != "user alice" {
		t.Errorf("failover sees %q, want the user logged in on the master", got.body)
	}
	if got := do(t, failover, "POST", "/write", c, nil, map[string]string{CSRFHeader: csrf}); got.status != 200 {
		t.Errorf("failover refuses a write with the session's CSRF token: %d %s", got.status, got.body)
	}
	if got := do(t, stranger, "GET", "/", c, nil, nil); got.body != "anonymous" {
		t.Errorf("an instance with other keys sees %q, want anonymous", got.body)
	}
}

// TestKeyRotation: a new key prepended to the ring logs nobody out; the
// old cookie is resealed with the new key; once the old key is dropped,
// only resealed cookies still open.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	before := whoami(&Sessions{Keys: StaticKeys{ring(t, oldKey)}})
	during := whoami(&Sessions{Keys: StaticKeys{ring(t, newKey, oldKey)}})
	after := whoami(&Sessions{Keys: StaticKeys{ring(t, newKey)}})

	c, _ := login(t, before, "bob")
	res := do(t, during, "GET", "/", c, nil, nil)
	if res.body != "user bob" {
		t.Fatalf("after rotation the session reads %q, want bob still logged in", res.body)
	}
	resealed := cookieNamed(res.cookies, "session")
	if resealed == nil {
		t.Fatal("a cookie sealed with the old key was not resealed with the new one")
	}
	if got := do(t, after, "GET", "/", resealed, nil, nil); got.body != "user bob" {
		t.Errorf("the resealed cookie reads %q once the old key is gone, want bob", got.body)
	}
	if got := do(t, after, "GET", "/", c, nil, nil); got.body != "anonymous" {
		t.Errorf("a cookie sealed with a removed key reads %q, want anonymous", got.body)
	}
	// A cookie sealed with the newest key is not rewritten on every request.
	if res := do(t, during, "GET", "/", resealed, nil, nil); cookieNamed(res.cookies, "session") != nil {
		t.Error("a fresh cookie with the newest key was rewritten")
	}
}

// TestSessionTampering: any change to the sealed value, a value moved to
// another cookie name, and garbage are all refused.
func TestSessionTampering(t *testing.T) {
	k := ring(t, GenerateKey())
	h := whoami(&Sessions{Keys: StaticKeys{k}})
	c, _ := login(t, h, "carol")
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		bad := &http.Cookie{Name: "session", Value: base64.RawURLEncoding.EncodeToString(b)}
		if got := do(t, h, "GET", "/", bad, nil, nil); got.body != "anonymous" {
			t.Fatalf("byte %d flipped: session reads %q, want anonymous", i, got.body)
		}
	}
	for _, v := range []string{"", "x", c.Value[:len(c.Value)-4], c.Value + "AA", strings.Repeat("A", 200)} {
		if got := do(t, h, "GET", "/", &http.Cookie{Name: "session", Value: v}, nil, nil); got.body != "anonymous" {
			t.Errorf("cookie %.20q...: session reads %q, want anonymous", v, got.body)
		}
	}
	// The cookie's name is authenticated: the value does not open elsewhere.
	other := whoami(&Sessions{Keys: StaticKeys{k}, Name: "other"})
	if got := do(t, other, "GET", "/", &http.Cookie{Name: "other", Value: c.Value}, nil, nil); got.body != "anonymous" {
		t.Errorf("a value moved to another cookie name reads %q, want anonymous", got.body)
	}
}

// TestSessionExpiry: a session unused for MaxAge is gone.
func TestSessionExpiry(t *testing.T) {
	k := StaticKeys{ring(t, GenerateKey())}
	m := &Sessions{Keys: k, MaxAge: time.Hour}
	s := &Session{UserID: 1, User: "dan", CSRF: "x", Issued: time.Now().Add(-2 * time.Hour).Unix()}
	b := `{"u":1,"n":"dan","c":"x","i":` + strconv.FormatInt(s.Issued, 10) + `}`
	c := &http.Cookie{Name: "session", Value: k.R.Seal("session", []byte(b))}
	if got := do(t, whoami(m), "GET", "/", c, nil, nil); got.body != "anonymous" {
		t.Errorf("a session 2h old with MaxAge 1h reads %q, want anonymous", got.body)
	}
}

// TestCSRF: unsafe methods need the session's token, in the header or the
// form; a token of another session does not do.
func TestCSRF(t *testing.T) {
	k := StaticKeys{ring(t, GenerateKey())}
	h := whoami(&Sessions{Keys: k})
	c, csrf := login(t, h, "erin")
	_, otherCSRF := login(t, h, "frank")
	cases := []struct {
		name   string
		method string
		cookie *http.Cookie
		form   url.Values
		header map[string]string
		want   int
	}{
		{"GET needs no token", "GET", c, nil, nil, 200},
		{"POST without token", "POST", c, nil, nil, 403},
		{"POST with the header", "POST", c, nil, map[string]string{CSRFHeader: csrf}, 200},
		{"POST with the form field", "POST", c, url.Values{CSRFField: {csrf}}, nil, 200},
		{"PUT with the header", "PUT", c, nil, map[string]string{CSRFHeader: csrf}, 200},
		{"DELETE without token", "DELETE", c, nil, nil, 403},
		{"POST with another session's token", "POST", c, nil, map[string]string{CSRFHeader: otherCSRF}, 403},
		{"POST with a wrong token", "POST", c, url.Values{CSRFField: {"nope"}}, nil, 403},
		{"POST without a session", "POST", nil, nil, map[string]string{CSRFHeader: csrf}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/write"
			if tc.method == "GET" {
				path = "/"
			}
			if got := do(t, h, tc.method, path, tc.cookie, tc.form, tc.header); got.status != tc.want {
				t.Errorf("%s: %d %s, want %d", tc.name, got.status, got.body, tc.want)
			}
		})
	}
}

// TestParseKeys: the key file format.
func TestParseKeys(t *testing.T) {
	k1, k2 := GenerateKey(), GenerateKey()
	url2 := strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(k2), "=")
	cases := []struct {
		name, text string
		keys       int
		ok         bool
	}{
		{"one key", k1 + "\n", 1, true},
		{"newest first with comments", "# rotated today\n" + k2 + "\n\n# old\n" + k1 + "\n", 2, true},
		{"url alphabet unpadded", url2, 1, true},
		{"comma separated (env)", k1 + "," + k2, 2, true},
		{"empty", "# nothing\n", 0, false},
		{"short key", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0, false},
		{"not base64", "!!!!", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseKeys(tc.text)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKeys: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && r.Len() != tc.keys {
				t.Errorf("%d keys, want %d", r.Len(), tc.keys)
			}
		})
	}
}

// TestKeyFileReload: a rewritten key file (a rotated Secret) takes effect
// on reload; a broken one keeps the previous ring.
func TestKeyFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k1, k2 := GenerateKey(), GenerateKey()
	if err := os.WriteFile(path, []byte(k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed := kf.Ring().Seal("session", []byte("x"))
	if err := os.WriteFile(path, []byte(k2+"\n"+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kf.reload(); err != nil {
		t.Fatal(err)
	}
	if kf.Ring().Len() != 2 {
		t.Fatalf("%d keys after reload, want 2", kf.Ring().Len())
	}
	if _, old, err := kf.Ring().Open("session", sealed); err != nil || !old {
		t.Errorf("a value sealed before the rotation: err %v, old %v; want it to open as old", err, old)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kf.reload(); err == nil {
		t.Error("a broken key file reloaded without error")
	}
	if kf.Ring().Len() != 2 {
		t.Error("a broken key file replaced the ring")
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing key file loaded")
	}
}
