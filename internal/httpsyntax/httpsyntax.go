// Package httpsyntax holds the small pieces of HTTP/1.1 syntax (RFC 9110)
// that tandem's HTTP code shares: the fast request path (h1), the
// upstream client's response parser and the proxy's header rules.
package httpsyntax

import "strings"

// Token reports whether s is a non-empty token (RFC 9110 5.6.2): a valid
// header field name.
func Token(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return s != ""
}

// FieldValue reports whether s may be a header field value: no control
// character but horizontal tab (RFC 9110 5.5; obs-text allowed), as
// net/http checks values (httpguts.ValidHeaderFieldValue).
func FieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Host reports whether s may be the value of a Host header, as net/http
// checks it (httpguts.ValidHostHeader): the bytes of a host, a port, an
// IPv6 literal and the sub-delims, nothing else; empty is allowed.
func Host(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

var hostByte = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&'()*+,-.:;=[]_~") {
		t[c] = true
	}
	return t
}()

var tchar = func() (t [256]bool) {
	for _, c := range []byte("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
		t[c] = true
	}
	return t
}()

// TrimOWS drops the spaces and tabs around a header value (strings.Trim
// with a cutset builds the set on every call: a few percent of a request).
func TrimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// HasToken reports whether the comma-separated values list token, ASCII
// case-insensitively (as net/http's own check).
func HasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if EqualFold(TrimOWS(t), token) {
				return true
			}
		}
	}
	return false
}

// EqualFold reports whether a and b are equal, ASCII case-insensitively.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// HopByHop reports whether the header named k (in canonical form) concerns
// one connection only and is never forwarded as is (RFC 9110 7.6.1, and
// the ones net/http's reverse proxy drops): the one list of them. The
// headers a Connection header names are hop-by-hop too (see HasToken).
func HopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
