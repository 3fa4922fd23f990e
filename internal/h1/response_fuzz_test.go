package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// handlerProgram is a handler's calls on its ResponseWriter, decoded from
// fuzz bytes: each op is one byte, some take an argument byte or a run.
type handlerProgram []byte

var (
	fuzzHeaderNames = []string{"Content-Type", "Content-Length", "X-A", "Cache-Control", "Trailer", "X-Sum", "Etag", "Location"}
	fuzzCodes       = []int{200, 201, 204, 206, 301, 304, 400, 404, 500, 503, 103}
	fuzzValues      = []string{"", "text/plain", "text/html", "5", "0", "12", "x", "X-Sum", "v1", "abc, def", "-1", "99999"}
)

// run plays the program on w.
func (p handlerProgram) run(w http.ResponseWriter) {
	for i := 0; i < len(p); i++ {
		arg := func() int {
			if i+1 < len(p) {
				i++
				return int(p[i])
			}
			return 0
		}
		switch p[i] % 6 {
		case 0:
			a := arg()
			w.Header().Set(fuzzHeaderNames[a%len(fuzzHeaderNames)], fuzzValues[(a/len(fuzzHeaderNames))%len(fuzzValues)])
		case 1:
			w.Header().Del(fuzzHeaderNames[arg()%len(fuzzHeaderNames)])
		case 2:
			w.WriteHeader(fuzzCodes[arg()%len(fuzzCodes)])
		case 3:
			n := arg() * 37 // up to 9 KiB: across the 2 KiB and 4 KiB steps
			w.Write(bytes.Repeat([]byte{'a' + byte(n%26)}, n))
		case 4:
			w.Write([]byte("<html><body>hi</body></html>"))
		case 5:
			http.NewResponseController(w).Flush()
		}
	}
}

// FuzzResponseWriter holds the fast path's ResponseWriter to net/http's
// server: the same calls of a handler make the same answer (status, the
// header but for Date, framing, body, trailers), and leave the
// connection fit for the next request alike.
func FuzzResponseWriter(f *testing.F) {
	f.Add([]byte{3, 10}, false)                      // a small write: Content-Length counted
	f.Add([]byte{0, 1, 2, 0, 3, 200}, false)         // a Content-Type, 200, a large write
	f.Add([]byte{2, 2, 3, 5}, true)                  // HEAD of a 204 with a body write
	f.Add([]byte{0, 4, 2, 5, 3, 1}, false)           // a declared Content-Length of 5, 304
	f.Add([]byte{0, 12, 0, 5, 3, 2, 5, 3, 2}, false) // a trailer declared, flush between writes
	f.Add([]byte{2, 10, 2, 0, 4}, false)             // 103 early hints, then 200
	f.Add([]byte{4, 0, 0}, false)                    // sniffed HTML, then a header too late
	var (
		mu   sync.Mutex
		prog handlerProgram
	)
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p := prog
		mu.Unlock()
		p.run(w)
	}
	fast := startServer(f, h)
	std := startStd(f, h)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		if len(data) > 64 {
			return
		}
		mu.Lock()
		prog = handlerProgram(data)
		mu.Unlock()
		method := "GET"
		if head {
			method = "HEAD"
		}
		want, werr := exchange(t, std.addr, method)
		got, err := exchange(t, fast.addr, method)
		if err != nil {
			t.Fatalf("program %v, %s: the fast path's answer does not parse: %v", data, method, err)
		}
		if werr != nil {
			// net/http writes what its own client cannot read (a HEAD
			// answer keeps an invalid Content-Length of the handler's): the
			// fast path, whose answer parses, is no worse.
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("program %v, %s:\n fast path %+v\n net/http  %+v", data, method, got, want)
		}
	})
}

// answer is what a client sees of one response and the connection after.
type answer struct {
	Status  int
	Header  http.Header
	Length  int64
	Chunked bool
	Body    string
	BodyCut bool // the body ended before its length: the connection closed
	Trailer http.Header
	NextOK  bool // a second request on the connection was answered
	Interim []int
}

// exchange sends method / then GET /next on one connection.
func exchange(t *testing.T, addr, method string) (answer, error) {
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(nc, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", method)
	br := bufio.NewReader(nc)
	var a answer
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return a, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		a.Interim = append(a.Interim, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	// A body shorter than its Content-Length ends with the connection:
	// the same cut on both sides is the same answer.
	a.BodyCut = err != nil
	a.Status, a.Length, a.Body, a.Trailer = resp.StatusCode, resp.ContentLength, string(body), resp.Trailer
	a.Chunked = slices.Contains(resp.TransferEncoding, "chunked")
	a.Header = resp.Header.Clone()
	a.Header.Del("Date")
	a.Header.Del(servedBy)
	if len(a.Header) == 0 {
		a.Header = nil
	}
	if len(a.Trailer) == 0 {
		a.Trailer = nil
	}
	if !resp.Close && !a.BodyCut {
		fmt.Fprintf(nc, "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		next, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		a.NextOK = err == nil && next.StatusCode > 0
	}
	return a, nil
}

// startStd serves h with net/http's server alone, on loopback.
func startStd(t testing.TB, h http.HandlerFunc) *testServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &testServer{addr: ln.Addr().String()}
}
