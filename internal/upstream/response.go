package upstream

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
)

// headerBuffered reports whether the whole response head is buffered.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// readResponse reads a response head from br: the common case by
// readResponseFast, anything else by http.ReadResponse. The body of a
// response read the fast way is nil: the Content-Length bytes that follow.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if resp := readResponseFast(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

var crlf2 = []byte("\r\n\r\n")

// readResponseFast parses, with a few allocations rather than a dozen, the
// response head that servers send almost always, when it is whole in br's
// buffer: HTTP/1.1, a status from 200 to 599 other than 204 and 304, one
// Content-Length, no Transfer-Encoding, Trailer or Pragma, every header on
// one line with a valid name and value, to a request other than HEAD. It
// returns what http.ReadResponse would, or nil having consumed nothing
// when the head is anything else, for http.ReadResponse to read (or
// refuse) as it always did.
func readResponseFast(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return nil
	}
	head := string(buf[:end+2]) // every line with its CRLF
	line, rest, ok := cutLine(head)
	// "HTTP/1.1 200" and an optional reason phrase.
	if !ok || len(line) < 12 || line[:9] != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' ||
		strings.IndexByte(line, '\r') >= 0 {
		return nil
	}
	status := line[9:]
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	n := strings.Count(rest, "\n") // the lines, if each ends in CRLF (else nil below)
	h := make(http.Header, n)
	vals := make([]string, n)
	var length []string
	for rest != "" {
		if line, rest, ok = cutLine(rest); !ok {
			return nil // a bare LF: net/http's to read
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpsyntax.Token(line[:colon]) {
			return nil // a continuation line, a bad name or no colon
		}
		v := httpsyntax.TrimOWS(line[colon+1:])
		if !httpsyntax.FieldValue(v) {
			return nil
		}
		k := textproto.CanonicalMIMEHeaderKey(line[:colon])
		switch k {
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil
		}
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
		} else {
			vals[0] = v
			h[k], vals = vals[:1:1], vals[1:]
		}
		if k == "Content-Length" {
			length = h[k]
		}
	}
	if len(length) != 1 {
		return nil
	}
	size, ok := parseLength(length[0])
	if !ok {
		return nil
	}
	br.Discard(end + 4)
	resp := &http.Response{Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: size, Request: req}
	if conn := h["Connection"]; len(conn) > 0 && httpsyntax.HasToken(conn, "close") {
		// As net/http: the connection ends with this response.
		delete(h, "Connection")
		resp.Close = true
	}
	if size == 0 {
		resp.Body = http.NoBody
	}
	return resp
}

// cutLine cuts s after its first LF: the line before it, which must end
// in CR (ok false otherwise: a bare LF), and the rest. One byte search
// rather than strings.Cut's substring search: a tenth of the parse. A
// line still holding a CR is refused by the checks of what it holds.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i <= 0 || s[i-1] != '\r' {
		return "", "", false
	}
	return s[:i-1], s[i+1:], true
}

// parseLength parses a Content-Length of 1 to 18 digits.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
