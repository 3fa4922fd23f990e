package proxy

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/route"
)

// usingWriter is a ResponseWriter that takes a header whole, as h1's does.
type usingWriter struct {
	*httptest.ResponseRecorder
	used http.Header
}

func (w *usingWriter) Header() http.Header {
	if w.used != nil {
		return w.used
	}
	return w.ResponseRecorder.Header()
}

func (w *usingWriter) UseHeader(h http.Header) { w.used = h }

// TestAnswerHeader: handed over whole or copied field by field, the
// client's header is the same: hop-by-hop fields and those the server's
// Connection names dropped, the server's HSTS replaced by the listener's,
// a field the gateway set kept unless the server sent it too, the
// exposed server's name added.
func TestAnswerHeader(t *testing.T) {
	serverHeader := func() http.Header {
		return http.Header{
			"Connection":                {"keep-alive, X-Hop"},
			"Keep-Alive":                {"timeout=5"},
			"X-Hop":                     {"h"},
			"Strict-Transport-Security": {"max-age=1"},
			"Content-Type":              {"text/plain"},
			"X-App":                     {"a", "b"},
			"X-Both":                    {"server"},
		}
	}
	want := http.Header{
		"Strict-Transport-Security": {"max-age=16000000"},
		"Content-Type":              {"text/plain"},
		"X-App":                     {"a", "b"},
		"X-Both":                    {"server"},
		"X-Gateway":                 {"g"},
		"X-Tandem-Server":           {"master"},
	}
	st := &reqState{group: &route.Group{Cfg: &config.Group{ExposeServer: true}}, hsts: "max-age=16000000",
		server: backend.NewRegistry(nil).Get(backend.Key{Group: "g", Name: "master", Address: "127.0.0.1:1"})}
	for _, tc := range []struct {
		name  string
		w     http.ResponseWriter
		whole bool
	}{
		{"copied", httptest.NewRecorder(), false},
		{"handed over", &usingWriter{ResponseRecorder: httptest.NewRecorder()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.Header().Set("Strict-Transport-Security", st.hsts)
			tc.w.Header().Set("X-Gateway", "g")
			tc.w.Header().Set("X-Both", "gateway")
			resp := &http.Response{Header: serverHeader()}
			h := answerHeader(tc.w, resp, st)
			if !maps.EqualFunc(h, want, slices.Equal) || !maps.EqualFunc(tc.w.Header(), want, slices.Equal) {
				t.Errorf("header %v\nwriter's %v\nwant %v", h, tc.w.Header(), want)
			}
			if handed := len(resp.Header) == len(h) && resp.Header["X-Tandem-Server"] != nil; handed != tc.whole {
				t.Errorf("the server's own map became the answer's: %v, want %v", handed, tc.whole)
			}
		})
	}
}
