package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadResponseFast holds the fast response parser to http.ReadResponse:
// whatever head it takes, net/http reads the same way (status, headers,
// length, close), and it consumes exactly the head. A difference would be
// a response desync between tandem and its servers.
func FuzzReadResponseFast(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: a\r\nX-A: b\r\n\r\nno!",
		"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length:  7 \r\nConnection: close\r\n\r\nclosing",
		"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nset-cookie: a=b\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Folded: a\r\n b\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nBad Name: x\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: a\x00b\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: \t a \t\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nPragma: no-cache\r\n\r\nabc",
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 099 Odd\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 2000 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		// Longer than the reader's buffer: the head is read, the rest waits.
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + strings.Repeat("x", 5000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req := &http.Request{Method: http.MethodGet}
		src := bytes.NewReader(in)
		br := bufio.NewReaderSize(src, 4096)
		br.Peek(1) // the head is in the buffer, as on a connection
		fast := readResponseFast(br, req)
		if fast == nil {
			return // left to http.ReadResponse: nothing to compare
		}
		// What br took from the input less what it still holds: an input
		// longer than br's buffer is not all in it.
		consumed := int(src.Size()) - src.Len() - br.Buffered()
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), req)
		if err != nil {
			t.Fatalf("fast path took a head net/http refuses (%v):\n%q", err, in)
		}
		defer want.Body.Close()
		if fast.StatusCode != want.StatusCode || fast.Status != want.Status || fast.Proto != want.Proto ||
			fast.ContentLength != want.ContentLength || fast.Close != want.Close {
			t.Fatalf("fast %d %q %s len %d close %v; net/http %d %q %s len %d close %v\n%q",
				fast.StatusCode, fast.Status, fast.Proto, fast.ContentLength, fast.Close,
				want.StatusCode, want.Status, want.Proto, want.ContentLength, want.Close, in)
		}
		if !reflect.DeepEqual(fast.Header, want.Header) {
			t.Fatalf("headers differ:\nfast     %v\nnet/http %v\n%q", fast.Header, want.Header, in)
		}
		// The fast parser consumed the head, all of it and no more: what
		// follows is the body net/http reads.
		body, _ := io.ReadAll(want.Body)
		rest := in[consumed:]
		if int64(len(body)) == want.ContentLength && !strings.HasPrefix(string(rest), string(body)) {
			t.Fatalf("fast parser consumed %d bytes; the body net/http read (%q) does not follow them\n%q", consumed, body, in)
		}
	})
}
