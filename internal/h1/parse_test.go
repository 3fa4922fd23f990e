package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// maxHeaderValueCount is net/http's DefaultMaxHeaderValueCount (Go 1.27):
// its server answers 431 to a request with more header lines than that,
// whatever their size. (The constant is not named here: go.mod says 1.26.)
const maxHeaderValueCount = 500

// newTestConn returns a connection with what parseHead needs: the
// connection's context values and a fresh header map.
func newTestConn() *conn {
	c := &conn{s: &Server{}, remote: "192.0.2.1:1234"}
	c.values = context.Background()
	c.hdr = make(http.Header, 16)
	return c
}

// dirtyConn returns a connection that has parsed a request with many
// headers and a query already: its reused header values, header map and
// URL hold stale data a new request must not see.
func dirtyConn(t testing.TB) *conn {
	c := newTestConn()
	var b strings.Builder
	b.WriteString("POST /stale/path?stale=1 HTTP/1.1\r\nHost: stale.example\r\nContent-Length: 99\r\nConnection: close\r\nPragma: no-cache\r\n")
	for i := range 40 {
		fmt.Fprintf(&b, "X-Stale-%d: stale value %d\r\n", i, i)
	}
	b.WriteString("Accept: stale\r\nCookie: a=stale\r\n\r\n")
	if !c.parseHead([]byte(b.String()), c.newRequest()) {
		t.Fatal("parseHead rejected the stale head")
	}
	return c
}

// parse runs parseHead as the connection does, on a new request.
func parse(c *conn, head []byte) (*http.Request, bool) {
	r := c.newRequest()
	return r, c.parseHead(head, r)
}

// validHostByte is httpguts.ValidHostHeader's table (vendored in the
// standard library, not importable here).
var validHostByte = func() (t [256]bool) {
	for _, b := range []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&()*+,-.:;=[']_~") {
		t[b] = true
	}
	return t
}()

func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		if !validHostByte[h[i]] {
			return false
		}
	}
	return true
}

// checkAsNetHTTP asserts that got, the request parseHead accepted from the
// head of in, is the request net/http's server reads from in.
func checkAsNetHTTP(t *testing.T, in, head []byte, got *http.Request) {
	t.Helper()
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		t.Fatalf("parseHead accepted %q; http.ReadRequest: %v", head, err)
	}
	// What net/http's server checks after reading the request
	// (conn.readRequest): one valid Host header. ReadRequest drops Host
	// from the header map, so the header lines are read again for it.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := tp.ReadLine(); err != nil {
		t.Fatal(err)
	}
	mime, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("parseHead accepted %q; textproto: %v", head, err)
	}
	if hosts := mime["Host"]; len(hosts) != 1 || !validHostHeader(hosts[0]) {
		t.Fatalf("parseHead accepted %q with Host %q; net/http's server answers 400", head, hosts)
	}
	if n := bytes.Count(head, []byte("\n")) - 2; n > maxHeaderValueCount {
		t.Fatalf("parseHead accepted %s with %d header lines; net/http's server answers 431 past %d", short(head), n, maxHeaderValueCount)
	}
	if want.ProtoMajor != 1 || want.ProtoMinor != 1 {
		t.Fatalf("parseHead accepted %q: net/http reads %s", head, want.Proto)
	}
	delete(want.Header, "Host") // ReadRequest did, as net/http's server does

	if got.Method != want.Method {
		t.Errorf("%q: Method %q, net/http %q", head, got.Method, want.Method)
	}
	if got.RequestURI != want.RequestURI {
		t.Errorf("%q: RequestURI %q, net/http %q", head, got.RequestURI, want.RequestURI)
	}
	if got.URL == nil {
		t.Fatalf("%q: nil URL", head)
	}
	g, w := got.URL, want.URL
	if g.String() != w.String() {
		t.Errorf("%q: URL %q, net/http %q", head, g.String(), w.String())
	}
	for _, f := range []struct {
		name string
		g, w any
	}{
		{"Scheme", g.Scheme, w.Scheme},
		{"Opaque", g.Opaque, w.Opaque},
		{"User", g.User, w.User},
		{"Host", g.Host, w.Host},
		{"Path", g.Path, w.Path},
		{"RawPath", g.RawPath, w.RawPath},
		{"OmitHost", g.OmitHost, w.OmitHost},
		{"ForceQuery", g.ForceQuery, w.ForceQuery},
		{"RawQuery", g.RawQuery, w.RawQuery},
		{"Fragment", g.Fragment, w.Fragment},
		{"RawFragment", g.RawFragment, w.RawFragment},
	} {
		if !reflect.DeepEqual(f.g, f.w) {
			t.Errorf("%q: URL.%s %#v, net/http %#v", head, f.name, f.g, f.w)
		}
	}
	if !reflect.DeepEqual(*g, *w) {
		t.Errorf("%q: URL %#v, net/http %#v", head, *g, *w)
	}
	if got.Host != want.Host {
		t.Errorf("%q: Host %q, net/http %q", head, got.Host, want.Host)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Errorf("%q: Header\n%#v\nnet/http\n%#v", head, got.Header, want.Header)
	}
	if got.ContentLength != want.ContentLength {
		t.Errorf("%q: ContentLength %d, net/http %d", head, got.ContentLength, want.ContentLength)
	}
	if got.Close != want.Close {
		t.Errorf("%q: Close %v, net/http %v", head, got.Close, want.Close)
	}
	if got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor {
		t.Errorf("%q: Proto %s (%d.%d), net/http %s (%d.%d)", head, got.Proto, got.ProtoMajor, got.ProtoMinor, want.Proto, want.ProtoMajor, want.ProtoMinor)
	}
	if len(want.TransferEncoding) > 0 || want.Trailer != nil {
		t.Errorf("%q: net/http reads Transfer-Encoding %q, Trailer %v", head, want.TransferEncoding, want.Trailer)
	}
}

// short quotes b, cut if long.
func short(b []byte) string {
	if len(b) > 120 {
		return fmt.Sprintf("%q... (%d bytes)", b[:120], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// seedHeads are realistic and hostile request heads (some with a body).
var seedHeads = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /search?q=tandem&page=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	"POST /api/tasks HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"title\":\"x\"}",
	"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nAccept: application/json\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 10.0.0.1\r\ncontent-length: 0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:  x \t\r\nX-A:\t a b \t\r\nX-Empty:\r\nX-Spaces:   \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\nX-A: b\n\n",
	"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n1234567",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
	"GET http://example.com/a?b HTTP/1.1\r\nHost: other\r\n\r\n",
	"GET /a%20b/%2F/%zz?x=%41 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /%41%42c HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a//b///c HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a?? HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a?b? HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a?b#frag HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a!b'c(d)e*f HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /$&+,:;=@~-._ HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a:b HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /\tx HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
	"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n",
	"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: user@x\r\n\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"CONNECT /rpc HTTP/1.1\r\nHost: x\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"get / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
	"GET / http/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nTrailer: X-Sum\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\r\n\r\n",
	"DELETE /tasks/42 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def\r\nContent-Length: 0\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}

func FuzzParseHead(f *testing.F) {
	for _, s := range seedHeads {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		i := bytes.Index(in, crlf2)
		if i < 0 {
			return // no blank line: not a whole head, nothing to compare
		}
		head := in[:i+4]
		fresh, dirty := newTestConn(), dirtyConn(t)
		r1, ok1 := parse(fresh, head)
		r2, ok2 := parse(dirty, head)
		if ok1 != ok2 {
			t.Fatalf("%q: parseHead says %v on a new connection, %v after another request", head, ok1, ok2)
		}
		if !ok1 {
			return // the fallback reads it
		}
		checkAsNetHTTP(t, in, head, r1)
		checkAsNetHTTP(t, in, head, r2)
	})
}

func TestParseHead(t *testing.T) {
	type want struct {
		method, uri, path, rawPath, rawQuery string
		forceQuery                           bool
		host                                 string
		header                               http.Header
		cl                                   int64
		close                                bool
	}
	accepted := []struct {
		name, in string
		want     want
	}{
		{"simple GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "example.com", header: http.Header{}}},
		{"query", "GET /search?q=a+b&x=%41 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
			want{method: "GET", uri: "/search?q=a+b&x=%41", path: "/search", rawQuery: "q=a+b&x=%41", host: "example.com",
				header: http.Header{"Accept": {"*/*"}}}},
		{"POST with body", "POST /api HTTP/1.1\r\nHost: x:8080\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"title\":\"x\"}",
			want{method: "POST", uri: "/api", path: "/api", host: "x:8080", cl: 13,
				header: http.Header{"Content-Type": {"application/json"}, "Content-Length": {"13"}}}},
		{"Content-Length with leading zeros", "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n1234567",
			want{method: "PUT", uri: "/a", path: "/a", host: "x", cl: 7, header: http.Header{"Content-Length": {"007"}}}},
		{"duplicate headers", "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nCookie: a=1\r\nAccept: application/json\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x",
				header: http.Header{"Accept": {"text/html", "application/json"}, "Cookie": {"a=1"}}}},
		{"Pragma no-cache", "GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x",
				header: http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"no-cache"}}}},
		{"Pragma no-cache with Cache-Control", "GET / HTTP/1.1\r\nHost: x\r\nCache-Control: max-age=0\r\nPragma: no-cache\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x",
				header: http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"max-age=0"}}}},
		{"Connection close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x", close: true,
				header: http.Header{"Connection": {"keep-alive, Close"}}}},
		{"Connection keep-alive", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x", header: http.Header{"Connection": {"keep-alive"}}}},
		{"lower-case names", "GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 10.0.0.1\r\nCONTENT-length: 0\r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x",
				header: http.Header{"X-Forwarded-For": {"10.0.0.1"}, "Content-Length": {"0"}}}},
		{"OWS and tabs", "GET / HTTP/1.1\r\nHost: \t x \t\r\nX-A:\t a \tb \t\r\nX-Empty:\r\nX-Blank:  \t \r\n\r\n",
			want{method: "GET", uri: "/", path: "/", host: "x",
				header: http.Header{"X-A": {"a \tb"}, "X-Empty": {""}, "X-Blank": {""}}}},
		{"percent escapes", "GET /a%20b/%2F/c?x=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "/a%20b/%2F/c?x=%zz", path: "/a b///c", rawPath: "/a%20b/%2F/c", rawQuery: "x=%zz",
				host: "x", header: http.Header{}}},
		{"double slash", "GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "//evil.example/x", path: "//evil.example/x", host: "x", header: http.Header{}}},
		{"question mark at end", "GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "/a?", path: "/a", forceQuery: true, host: "x", header: http.Header{}}},
		{"two question marks", "GET /a?? HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "/a??", path: "/a", rawQuery: "?", host: "x", header: http.Header{}}},
		{"hash in path", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "/a#b", path: "/a#b", rawPath: "/a#b", host: "x", header: http.Header{}}},
		{"sub-delims in path", "GET /a!b'(c)*;d=e@f:g HTTP/1.1\r\nHost: x\r\n\r\n",
			want{method: "GET", uri: "/a!b'(c)*;d=e@f:g", path: "/a!b'(c)*;d=e@f:g", rawPath: "/a!b'(c)*;d=e@f:g", host: "x", header: http.Header{}}},
		{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
			want{method: "GET", uri: "/ws", path: "/ws", host: "x",
				header: http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}}},
		{"IPv6 Host", "OPTIONS /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			want{method: "OPTIONS", uri: "/x", path: "/x", host: "[::1]:8080", header: http.Header{}}},
	}
	for _, tc := range accepted {
		t.Run("accept/"+tc.name, func(t *testing.T) {
			head := []byte(tc.in[:strings.Index(tc.in, "\r\n\r\n")+4])
			for _, c := range []*conn{newTestConn(), dirtyConn(t)} {
				r, ok := parse(c, head)
				if !ok {
					t.Fatalf("parseHead rejected %q", head)
				}
				w := tc.want
				got := want{method: r.Method, uri: r.RequestURI, path: r.URL.Path, rawPath: r.URL.RawPath, rawQuery: r.URL.RawQuery,
					forceQuery: r.URL.ForceQuery, host: r.Host, header: r.Header, cl: r.ContentLength, close: r.Close}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("parseHead(%q)\n got %+v\nwant %+v", head, got, w)
				}
				checkAsNetHTTP(t, []byte(tc.in), head, r)
			}
		})
	}

	manyHeaders := "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("A: b\r\n", maxHeaderValueCount) + "\r\n"
	rejected := []struct{ name, in, why string }{
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", "other protocol versions: net/http's keep-alive rules"},
		{"absolute-form", "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", "the Host comes from the target"},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "net/http answers OPTIONS * itself"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "a tunnel"},
		{"CONNECT path", "CONNECT /rpc HTTP/1.1\r\nHost: x\r\n\r\n", "a tunnel"},
		{"PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2 preface"},
		{"PRI path", "PRI / HTTP/1.1\r\nHost: x\r\n\r\n", "PRI is left to net/http"},
		{"lower-case method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", "methods are upper-case here"},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "empty target: net/http rejects it"},
		{"NUL in target", "GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", "control byte: net/http rejects it"},
		{"high byte in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", "not visible ASCII"},
		{"Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "chunked body"},
		{"two equal Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "duplicate framing"},
		{"two Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "net/http answers 400"},
		{"signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", "net/http answers 400"},
		{"empty Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", "net/http answers 400"},
		{"huge Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n", "overflows"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "net/http joins the lines"},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\r\n\r\n", "net/http reads LF as a line end"},
		{"bare LF in a header", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", "net/http reads two headers"},
		{"CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n", "control byte"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "control byte"},
		{"high byte in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n", "obs-text"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "net/http keeps the name uncanonicalized"},
		{"leading space", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", "net/http rejects it"},
		{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "net/http rejects it"},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", "net/http rejects it"},
		{"missing Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", "net/http answers 400"},
		{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "net/http answers 400"},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "left to net/http"},
		{"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "net/http answers 400"},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", "net/http answers 400"},
		{"Expect", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", "100 Continue"},
		{"Upgrade on a POST", "POST /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "an upgrade is a GET here"},
		{"Upgrade with a body", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", "an upgrade has no body here"},
		{"Upgrade not in Connection", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", "not an upgrade, left to net/http"},
		{"Connection upgrade alone", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n", "no protocol named"},
		{"two Upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n", "left to net/http"},
		{"Upgrade and a hop-by-hop header", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade, X-Secret\r\nUpgrade: websocket\r\n\r\n", "hop-by-hop header"},
		{"Connection names a header", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\n\r\n", "hop-by-hop header"},
		{"Trailer", "POST / HTTP/1.1\r\nHost: x\r\nTrailer: X-Sum\r\nContent-Length: 1\r\n\r\na", "trailers"},
		{"too many header lines", manyHeaders,
			fmt.Sprintf("%d header lines, net/http's server answers 431 past %d", maxHeaderValueCount+1, maxHeaderValueCount)},
	}
	for _, tc := range rejected {
		t.Run("reject/"+tc.name, func(t *testing.T) {
			head := []byte(tc.in[:strings.Index(tc.in, "\r\n\r\n")+4])
			for _, c := range []*conn{newTestConn(), dirtyConn(t)} {
				if r, ok := parse(c, head); ok {
					t.Errorf("parseHead accepted %s (%s): %s %s Host %q, %d header names", short(head), tc.why, r.Method, r.RequestURI, r.Host, len(r.Header))
				}
			}
		})
	}
}

// TestParseHeadReuse parses requests one after another on one connection,
// as it does: no header, value or URL of a request shows in the next.
func TestParseHeadReuse(t *testing.T) {
	c := newTestConn()
	heads := []string{
		"GET /a?x=1 HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Two: 2\r\nCookie: c=1\r\n\r\n",
		"GET /%62 HTTP/1.1\r\nHost: b\r\nCookie: c=2\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
		"GET /d? HTTP/1.1\r\nHost: d\r\n\r\n",
	}
	var b strings.Builder
	b.WriteString("GET /e HTTP/1.1\r\nHost: e\r\n")
	for i := range 40 {
		fmt.Fprintf(&b, "X-H%d: %d\r\n", i, i)
	}
	b.WriteString("\r\n")
	heads = append(heads, b.String(), heads[0], heads[1])
	for _, h := range heads {
		r, ok := parse(c, []byte(h))
		if !ok {
			t.Fatalf("parseHead rejected %q", h)
		}
		checkAsNetHTTP(t, []byte(h), []byte(h), r)
	}
}
