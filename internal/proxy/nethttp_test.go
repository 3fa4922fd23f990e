package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/servertest"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// TestEnginesSendTheSame: a server gets the same request from either
// engine (request line, Host, every header field: no User-Agent of the
// gateway's own, no Accept-Encoding added, the forwarding headers and the
// epoch, the body framed alike) and the client the same answer. The one
// difference is net/http's: a body-less request other than GET and HEAD
// says Content-Length: 0 (as POST, PUT and PATCH do with both engines).
func TestEnginesSendTheSame(t *testing.T) {
	requests := []string{
		"GET /a/b%2Fc?q=1&r=%20 HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\nX-Multi: 1\r\nX-Multi: 2\r\nCookie: a=b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: curl/8\r\nAccept-Encoding: br\r\nConnection: X-Hop\r\nX-Hop: 1\r\nTe: trailers\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.7\r\nX-Tandem-Epoch: 99\r\nX-Tandem-Role: active\r\n\r\n",
		"HEAD /h HTTP/1.1\r\nHost: app.test:8080\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\ndata",
		"POST /empty HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n",
		"PUT /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /streamed HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"DELETE /d HTTP/1.1\r\nHost: app.test\r\n\r\n",
	}
	type seen struct {
		line   string
		header http.Header
		body   string
		status int
		answer string
	}
	got := map[string][]seen{}
	for _, engine := range engines {
		srv := servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
			if strings.HasPrefix(req.Head, "HEAD ") {
				_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				return err == nil
			}
			return servertest.Answer(c, "ok")
		})
		h := newEngineHarness(t, engine, "", srv.Addr())
		front := h.serve(t).Listener.Addr().String()
		for i, raw := range requests {
			status, answer := exchangeVia(t, front, raw)
			h.finished(t)
			reqs := srv.Requests()
			if len(reqs) != i+1 {
				t.Fatalf("%s: the server got %d requests after %d", engine, len(reqs), i+1)
			}
			sent := reqs[i]
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sent.Head)))
			if err != nil {
				t.Fatalf("%s: the server got a head net/http cannot read (%v):\n%s", engine, err, sent.Head)
			}
			line, _, _ := strings.Cut(sent.Head, "\r\n")
			r.Header["Host"] = []string{r.Host}
			got[engine] = append(got[engine], seen{line: line, header: r.Header, body: string(sent.Body), status: status, answer: answer})
		}
	}
	for i, raw := range requests {
		own, std := got[engines[0]][i], got[engines[1]][i]
		if cl := std.header["Content-Length"]; own.header["Content-Length"] == nil && len(cl) == 1 && cl[0] == "0" &&
			own.body == "" && !strings.HasPrefix(raw, "GET ") && !strings.HasPrefix(raw, "HEAD ") {
			delete(std.header, "Content-Length") // net/http's own, above
		}
		if !reflect.DeepEqual(own, std) {
			t.Errorf("request %q:\n%s: %+v\n%s: %+v", strings.SplitN(raw, "\r\n", 2)[0], engines[0], own, engines[1], std)
		}
		if ua := std.header["User-Agent"]; !strings.Contains(raw, "User-Agent") && ua != nil {
			t.Errorf("request %q: net/http sent User-Agent %q", strings.SplitN(raw, "\r\n", 2)[0], ua)
		}
	}
}

// TestBoundsNamedAlike: a server that sends an endless head or endless
// 1xx answers to a POST fails the try with upstream's error for that
// bound from either engine's client, though net/http's Transport may
// report the request's write, which the close cut, instead.
func TestBoundsNamedAlike(t *testing.T) {
	filler := "X-Filler: " + strings.Repeat("a", 100) + "\r\n"
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, _ int) bool {
		line := "HTTP/1.1 100 Continue\r\n\r\n"
		if strings.HasPrefix(req.Head, "POST /head ") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			line = filler
		}
		for range 20_000 { // 2 MB at most
			if _, err := io.WriteString(c, line); err != nil {
				break
			}
		}
		c.Close()
		return false
	})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	clients := map[string]exchanger{
		config.EngineTandem:  upstream.New(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }),
		config.EngineNetHTTP: newNetHTTP(dial),
	}
	for engine, up := range clients {
		for path, want := range map[string]error{"/head": upstream.ErrHeadTooLarge, "/1xx": upstream.ErrTooManyInformational} {
			for range 10 {
				head := "POST " + path + " HTTP/1.1\r\nHost: app.test\r\n"
				wr := &upstream.Request{Ctx: context.Background(), Method: "POST", Head: []byte(head),
					Body: strings.NewReader("x"), ContentLength: 1, Connect: time.Second}
				now := time.Now()
				resp, err := up.RoundTrip(wr, srv.Addr(), now, now.Add(5*time.Second))
				if err == nil {
					resp.Body.Close()
				}
				if !errors.Is(err, want) {
					t.Errorf("%s: POST %s: %v, want %v", engine, path, err, want)
					break
				}
			}
		}
	}
}
