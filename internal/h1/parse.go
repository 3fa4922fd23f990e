package h1

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
)

// maxHeaderLines bounds the header lines of a fast-path request, well
// under net/http's count (500 values), which it enforces on the others.
const maxHeaderLines = 100

// parseHead fills r from head, a request head whole in the buffer (through
// its blank line), and reports whether the request is for the fast path.
//
// The fast path takes a strict subset of what net/http accepts, and reads
// it as net/http does (FuzzParseHead holds it to that):
//   - "METHOD /target HTTP/1.1": an upper-case method other than CONNECT and
//     PRI, an origin-form target of visible ASCII;
//   - header lines "Name: value" with a token name and a value of visible
//     ASCII, spaces and tabs, no line folding, every line ending in CRLF;
//   - exactly one Host, of letters, digits and ".-_:[]";
//   - at most one Content-Length, of digits; no Transfer-Encoding, Trailer
//     or Expect; Connection naming at most close and keep-alive;
//   - or else a protocol upgrade: a GET with no Content-Length, one Upgrade
//     and Connection naming upgrade (and at most close or keep-alive), for
//     the handler to hijack.
//
// Anything else is left to net/http, which serves the request or answers
// the error it deserves.
func (c *conn) parseHead(head []byte, r *http.Request) bool {
	line, rest, ok := cutLine(head)
	if !ok {
		return false
	}
	method, line, ok1 := cutByte(line, ' ')
	target, proto, ok2 := cutByte(line, ' ')
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || !upperToken(method) || len(target) == 0 || target[0] != '/' || !visible(target) {
		return false
	}
	switch string(method) {
	case http.MethodConnect, "PRI":
		return false
	}
	// One string holds every value: one allocation, not one per header.
	s := string(head)
	off := len(head) - len(rest) // where the header lines start, in s
	h := r.Header
	nvals := 0
	var host string
	hosts, lengths, lines, upgrades := 0, 0, 0, 0
	connUpgrade := false
	for {
		line, next, ok := cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break // the blank line
		}
		if lines++; lines > maxHeaderLines {
			return false // net/http answers 431 past its own count
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !httpsyntax.Token(s[off:off+colon]) {
			return false // no name, a bad name, or obs-fold (a leading space)
		}
		v := line[colon+1:]
		if !fieldValue(v) {
			return false
		}
		value := httpsyntax.TrimOWS(s[off+colon+1 : off+len(line)])
		key := textproto.CanonicalMIMEHeaderKey(s[off : off+colon])
		switch key {
		case "Host":
			hosts++
			host = value
		case "Content-Length":
			lengths++
			if !digits(value) {
				return false
			}
		case "Transfer-Encoding", "Trailer", "Expect":
			return false
		case "Upgrade":
			upgrades++
		case "Connection":
			up, ok := connectionTokens(value)
			if !ok {
				return false
			}
			connUpgrade = connUpgrade || up
		}
		off += len(line) + 2
		rest = next
		if key == "Host" {
			continue // net/http moves it to r.Host
		}
		if nvals == len(c.vals) {
			c.vals = make([]string, max(16, 2*len(c.vals)))
			nvals = 0
		}
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		c.vals[nvals] = value
		h[key] = c.vals[nvals : nvals+1 : nvals+1]
		nvals++
	}
	if hosts != 1 || !hostChars(host) || lengths > 1 {
		return false
	}
	if (upgrades > 0 || connUpgrade) && (upgrades != 1 || !connUpgrade || lengths != 0 || string(method) != http.MethodGet) {
		return false
	}
	r.Method = s[:len(method)]
	r.RequestURI = s[len(method)+1 : len(method)+1+len(target)]
	if !c.parseURL(r.RequestURI) {
		u, err := url.ParseRequestURI(r.RequestURI)
		if err != nil {
			return false
		}
		r.URL = u
	} else {
		r.URL = &c.url
	}
	r.Host = host
	r.ContentLength = 0
	if lengths == 1 {
		r.ContentLength = parseDigits(h["Content-Length"][0])
	}
	r.Close = httpsyntax.HasToken(h["Connection"], "close")
	// As net/http: an HTTP/1.0 cache's Pragma: no-cache means Cache-Control.
	if p, ok := h["Pragma"]; ok && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	return true
}

// parseURL reads the common target, a path of unreserved characters and
// sub-delimiters with a query, into the connection's URL as
// url.ParseRequestURI would; false for any other, which that function
// then reads.
func (c *conn) parseURL(target string) bool {
	path, query, hasQuery := strings.Cut(target, "?")
	if strings.HasPrefix(path, "//") {
		return false
	}
	for i := 0; i < len(path); i++ {
		if !pathChar[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c == '#' || c <= ' ' || c >= 0x7f {
			return false
		}
	}
	// A lone "?" at the end is a query, empty (ForceQuery).
	c.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// pathChar: the bytes a path keeps as they are through url.ParseRequestURI
// (no escaping, no RawPath): unreserved, "/" and the sub-delimiters the
// path encoder leaves alone.
var pathChar = func() (t [256]bool) {
	for _, b := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/$&+,:;=@") {
		t[b] = true
	}
	return t
}()

func upperToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return len(b) > 0 && len(b) <= 16
}

// visible: printable ASCII, no space.
func visible(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// fieldValue: printable ASCII, spaces and tabs (no obs-text, no controls).
func fieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

func hostChars(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return len(h) > 0
}

// digits: a Content-Length the fast path reads (up to 18 digits, so it
// cannot overflow).
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0 && len(s) <= 18
}

func parseDigits(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// connectionTokens reads a Connection value naming only close, keep-alive
// and upgrade (others name hop-by-hop headers, which net/http's path
// handles); upgrade reports whether it names the last.
func connectionTokens(v string) (upgrade, ok bool) {
	for t := range strings.SplitSeq(v, ",") {
		switch t = httpsyntax.TrimOWS(t); {
		case httpsyntax.EqualFold(t, "upgrade"):
			upgrade = true
		case !httpsyntax.EqualFold(t, "close") && !httpsyntax.EqualFold(t, "keep-alive"):
			return false, false
		}
	}
	return upgrade, true
}

// cutLine splits b at its first CRLF; false if there is none or a bare LF
// comes first.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

func cutByte(b []byte, sep byte) (before, after []byte, ok bool) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}
