package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/route"
	"github.com/tandemproxy/tandem/internal/servertest"
)

// The checks net/http makes of a request it writes, written out here apart
// from the code under test: httpguts.ValidHeaderFieldName (a token),
// httpguts.ValidHeaderFieldValue (no control character but tab),
// validMethod (a token), and Request.Write's refusal of control characters
// in the request target (which must also hold no space, to stay one
// field of the request line, and be in origin form, or OPTIONS *).
func tokenOK(s string) bool {
	const tchar = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(tchar, rune(s[i])) {
			return false
		}
	}
	return s != ""
}

func targetOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return strings.HasPrefix(s, "/")
}

// listed reports whether the comma-separated values list token, ASCII
// case-insensitively.
func listed(values []string, token string) bool {
	lower := func(c byte) byte {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.Trim(t, " \t")
			same := len(t) == len(token)
			for i := 0; same && i < len(t); i++ {
				same = lower(t[i]) == lower(token[i])
			}
			if same {
				return true
			}
		}
	}
	return false
}

// FuzzOutbound holds the outbound request writer to what it means to send
// and to what net/http's Transport would: what it writes, http.ReadRequest
// reads back as one request, field by field the one meant (method,
// target, Host, each header, the body and its length) with nothing after
// it; and it refuses exactly the requests net/http's checks refuse.
func FuzzOutbound(f *testing.F) {
	f.Add("GET", "/a/b", "q=1", "app.example.com", "Accept", "*/*", "X-Custom", "v", "keep-alive", "", []byte(nil), false, false, false, "")
	f.Add("POST", "/post", "", "app.example.com:8080", "Content-Type", "text/plain", "Idempotency-Key", "k", "", "curl/8", []byte("body"), false, false, true, "front.example")
	f.Add("PUT", "/put", "", "[2001:db8::1]:443", "Te", "trailers, deflate", "X-Hop", "1", "X-Hop", "", []byte("chunked body"), true, false, false, "")
	f.Add("GET", "/ws", "", "app.example.com", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "13", "", "", []byte(nil), false, true, false, "")
	f.Add("GET", "/", "", "app.example.com", "X-Bad", "a\r\nInjected: 1", "X-Ok", "v", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", "app.example.com", "Bad Name", "v", "X-Ok", "v", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", "evil.example\r\nX-Injected: 1", "X-Ok", "v", "X-Ok", "w", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", `we"ird\host`, "X-Ok", "v", "X-Ok", "w", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "a b", "app.example.com", "X-Ok", "v", "X-Ok", "w", "", "", []byte(nil), false, false, false, "")
	f.Add("GE T", "/", "", "app.example.com", "X-Ok", "v", "X-Ok", "w", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", "app.example.com", "X-Tandem-Epoch", "99", "X-Tandem-Role", "active", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", "app.example.com", "Host", "other.example", "Content-Length", "5", "", "", []byte(nil), false, false, false, "")
	f.Add("GET", "/", "", "app.example.com", "X-Obs", "caf\xe9", "X-Tab", "\tv\t", "", "", []byte(nil), false, false, true, "x\x00y")
	f.Add("OPTIONS", "*", "", "app.example.com", "X-Ok", "v", "X-Ok", "w", "", "", []byte(nil), false, false, false, "")
	f.Fuzz(func(t *testing.T, method, path, query, host, k1, v1, k2, v2, conn, ua string, body []byte, chunked, upgrade, trustedPeer bool, xfh string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: host, Header: http.Header{},
			RemoteAddr: "203.0.113.9:4000"}
		if method == http.MethodOptions && path == "*" {
			r.RequestURI = "*"
		}
		r.Header.Add(k1, v1)
		r.Header.Add(k2, v2)
		if conn != "" {
			r.Header.Add("Connection", conn)
		}
		r.Header.Set("User-Agent", ua) // "": none of the gateway's own is sent

		if upgrade {
			r.Header.Add("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
		}
		if xfh != "" {
			r.Header.Set("X-Forwarded-Host", xfh)
		}
		if len(body) > 0 {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			if chunked {
				r.ContentLength = -1
			}
		}
		var prefixes []netip.Prefix
		if trustedPeer {
			prefixes = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		}

		// What is meant to be sent, and whether net/http would send it.
		target := r.URL.RequestURI()
		if r.RequestURI == "*" {
			target = "*"
		}
		valid := tokenOK(method) && (r.RequestURI == "*" || targetOK(target)) && validHost(host)
		meant := http.Header{}
		for k, vv := range r.Header {
			switch k {
			case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te",
				"Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "X-Forwarded-For",
				"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Tandem-Epoch", "X-Tandem-Role":
				continue
			}
			if listed(r.Header["Connection"], k) {
				continue
			}
			valid = valid && tokenOK(k)
			for _, v := range vv {
				if k == "User-Agent" && v == "" {
					continue
				}
				valid = valid && validFieldValue(v)
				meant[k] = append(meant[k], v)
			}
		}
		if listed(r.Header["Te"], "trailers") {
			meant["Te"] = []string{"trailers"}
		}
		if upgrade {
			meant["Connection"] = []string{"Upgrade"}
			meant["Upgrade"] = []string{"websocket"}
		}
		// This hop's forwarding headers, after a trusted peer's own.
		xff, xfhost, xfproto, fwd := "203.0.113.9", host, "http", "for=203.0.113.9;host="+string(appendQuoted(nil, host))+";proto=http"
		if trustedPeer {
			if prior := strings.Join(r.Header["X-Forwarded-For"], ", "); strings.Trim(prior, " \t") != "" {
				xff = prior + ", " + xff
			}
			if v := r.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
				xfhost = v[0]
			}
			if v := r.Header["X-Forwarded-Proto"]; len(v) > 0 && v[0] != "" {
				xfproto = v[0]
			}
			if v := r.Header["Forwarded"]; len(v) > 0 {
				fwd = strings.Join(v, ", ") + ", " + fwd
			}
			valid = valid && validFieldValue(xff) && validFieldValue(xfhost) && validFieldValue(xfproto) && validFieldValue(fwd)
		}
		meant["X-Forwarded-For"] = []string{xff}
		meant["X-Forwarded-Host"] = []string{xfhost}
		meant["X-Forwarded-Proto"] = []string{xfproto}
		meant["Forwarded"] = []string{fwd}
		meant["X-Tandem-Epoch"] = []string{"7"}

		st := &reqState{table: &route.Table{Trusted: prefixes}, group: &route.Group{Cfg: &config.Group{}}}
		wr, err := outbound(r, st, upgrade)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("outbound: %v, want errBadRequest", err)
			}
			if valid {
				t.Fatalf("refused a request net/http would send (%v): %s %q Host %q %q", err, method, target, host, r.Header)
			}
			return
		}
		defer wr.release()
		if !valid {
			t.Fatalf("sent a request net/http would refuse: %s %q Host %q %q", method, target, host, r.Header)
		}
		wr.Epoch, wr.HasEpoch = 7, true
		if len(body) > 0 {
			wr.Body = bytes.NewReader(body)
		}
		var out bytes.Buffer
		if err := wr.Write(bufio.NewWriter(&out)); err != nil {
			t.Fatal(err)
		}
		wire := out.Bytes()
		br := bufio.NewReader(bytes.NewReader(wire))
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("what was written does not parse (%v):\n%q", err, wire)
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("its body does not read (%v):\n%q", err, wire)
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("%q follow the request:\n%q", rest, wire)
		}
		if got.Method != method || got.RequestURI != target || got.Host != host || got.ProtoMinor != 1 {
			t.Errorf("read as %s %q HTTP/1.%d Host %q, meant %s %q HTTP/1.1 Host %q\n%q",
				got.Method, got.RequestURI, got.ProtoMinor, got.Host, method, target, host, wire)
		}
		wantLength := int64(len(body))
		if chunked && len(body) > 0 {
			wantLength = -1
		}
		if got.ContentLength != wantLength || !bytes.Equal(gotBody, body) {
			t.Errorf("body %q of length %d, meant %q of length %d\n%q", gotBody, got.ContentLength, body, wantLength, wire)
		}
		delete(got.Header, "Content-Length")
		for _, vv := range meant {
			for i := range vv {
				vv[i] = strings.Trim(vv[i], " \t") // as a server reads values
			}
		}
		if !reflect.DeepEqual(got.Header, meant) {
			t.Errorf("headers read back:\n%q\nmeant:\n%q\n%q", got.Header, meant, wire)
		}
	})
}

// TestUnfitRequestNotSent: a request net/http's server hands over that
// could not be written as it means (an opaque URL: its target would lose
// its leading slash) gets 400, and no server is tried or blamed.
func TestUnfitRequestNotSent(t *testing.T) { forEngines(t, testUnfitRequestNotSent) }

func testUnfitRequestNotSent(t *testing.T, engine string) {
	srv := servertest.New(t, func(c net.Conn, _ *servertest.Request, _ int) bool { return servertest.Answer(c, "ok") })
	h := newEngineHarness(t, engine, "    passive: {maxFails: 1}\n", srv.Addr())
	front := h.serve(t).Listener.Addr().String()
	if status, _ := exchangeVia(t, front, "GET http:opaque HTTP/1.1\r\nHost: app.test\r\n\r\n"); status != http.StatusBadRequest {
		t.Errorf("status %d, want 400", status)
	}
	h.finished(t)
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
	if status, body := exchangeVia(t, front, "GET /fine HTTP/1.1\r\nHost: app.test\r\n\r\n"); status != 200 || body != "ok" {
		t.Errorf("then a plain request: %d %q", status, body)
	}
}
