package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkKeepAlive: requests back to back on one kept-alive connection
// to a handler writing 16 bytes (the fast path's own cost per request, with
// the loopback round trip).
func BenchmarkKeepAlive(b *testing.B) {
	s := startServer(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "16")
		io.WriteString(w, "hello from bench")
	})
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	req := []byte("GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	// The answer has the same length every time: learn it once, then read
	// that many bytes, so that the allocations counted are the server's.
	nc.Write(req)
	first, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	var raw []byte
	first.Write(&sliceWriter{&raw})
	buf := make([]byte, len(raw))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }
