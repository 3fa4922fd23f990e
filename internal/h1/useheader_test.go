package h1

import (
	"io"
	"net/http"
	"testing"
)

// TestUseHeader: a header handed over whole is the head's, Header returns
// it, and the next request on the connection starts from an empty header
// of the connection's own; after WriteHeader a hand-over changes nothing.
func TestUseHeader(t *testing.T) {
	n := 0
	ts := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		n++
		if len(w.Header()) != 1 { // servedBy only
			t.Errorf("request %d starts with header %v", n, w.Header())
		}
		switch r.URL.Path {
		case "/handed":
			h := http.Header{"X-Handed": {"yes"}, servedBy: w.Header()[servedBy]}
			w.(interface{ UseHeader(http.Header) }).UseHeader(h)
			w.Header().Set("X-Later", "too") // into h
			if h.Get("X-Later") != "too" {
				t.Error("Header does not return the header handed over")
			}
		case "/after":
			w.WriteHeader(http.StatusAccepted)
			w.(interface{ UseHeader(http.Header) }).UseHeader(http.Header{"X-Handed": {"late"}})
		}
		io.WriteString(w, "ok")
	})
	c := &http.Client{}
	for _, tc := range []struct {
		path, handed, later string
	}{{"/handed", "yes", "too"}, {"/plain", "", ""}, {"/after", "", ""}, {"/handed", "yes", "too"}} {
		resp, err := c.Get("http://" + ts.addr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get(servedBy) != "fast" || resp.Header.Get("X-Handed") != tc.handed || resp.Header.Get("X-Later") != tc.later {
			t.Errorf("%s: header %v; want X-Handed %q, X-Later %q, served by the fast path", tc.path, resp.Header, tc.handed, tc.later)
		}
	}
}
