package proxy

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/servertest"
)

// discardWriter is a ResponseWriter that keeps the status and drops the body.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkForward is the request path without a client socket: Serve,
// the outbound request, a pooled connection to a loopback server that
// answers at once, the response relayed to a writer that drops it. The
// server's own cost (a goroutine reading lines) is in the figure too.
func BenchmarkForward(b *testing.B) {
	srv := servertest.New(b, func(c net.Conn, _ *servertest.Request, _ int) bool { return servertest.Answer(c, "hello") })
	h := newHarness(b, "", srv.Addr())
	body := bytes.Repeat([]byte("x"), 1024)
	for _, bc := range []struct {
		name, method string
		body         []byte
	}{
		{"GET", http.MethodGet, nil},
		{"PUT 1KiB", http.MethodPut, body},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, _ := http.NewRequestWithContext(context.Background(), bc.method, "http://app.test/some/path?q=1", nil)
			r.RequestURI = "/some/path?q=1"
			r.RemoteAddr = "192.0.2.1:40000"
			r.Header.Set("User-Agent", "bench/1.0")
			r.Header.Set("Accept", "*/*")
			r.Header.Set("Accept-Encoding", "gzip, deflate, br")
			r.Header.Set("Cookie", "session=0123456789abcdef0123456789abcdef")
			r.Header.Set("Connection", "keep-alive")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				if bc.body != nil {
					r.Body, r.ContentLength = readCloser{bytes.NewReader(bc.body)}, int64(len(bc.body))
				}
				clear(w.h)
				w.code = 0
				h.p.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
			// CPU time of the process (proxy and server), less disturbed
			// than wall time by other work on the machine.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the user and system CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
