package appkit

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzSessionCookie: whatever a client puts in the session cookie, the
// middleware neither panics nor lets it in as a user; only a sealed value
// opens.
func FuzzSessionCookie(f *testing.F) {
	ring, err := ParseKeys(GenerateKey())
	if err != nil {
		f.Fatal(err)
	}
	m := &Sessions{Keys: StaticKeys{ring}}
	// Sealed with the right key, but issued in 1970: expired.
	f.Add(ring.Seal("session", []byte(`{"u":1,"n":"x","c":"t","i":1}`)))
	f.Add(ring.Seal("other", []byte(`{"u":1}`)))
	f.Add("")
	f.Add("AQAAAAA")
	f.Fuzz(func(t *testing.T, value string) {
		h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if SessionFrom(r.Context()).LoggedIn() {
				t.Errorf("cookie %q opened as a logged-in session", value)
			}
		}))
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "session="+value)
		h.ServeHTTP(httptest.NewRecorder(), r)
	})
}
