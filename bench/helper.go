package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// helperCmd is the first argument that makes the bench binary a backend of
// its own (a child process, so that it can be killed and counted apart
// from the proxies) for the issue 9 scenarios: a server that answers as
// the demo app does on /status and /hello, and misbehaves on purpose on
// the other paths.
const helperCmd = "backend"

// helperStats is what GET /stats of a helper answers.
type helperStats struct {
	Name       string `json:"name"`
	Status     int64  `json:"status"`     // /status requests served
	Hello      int64  `json:"hello"`      // /hello requests served
	Stalled    int64  `json:"stalled"`    // /stall exchanges still open
	Websockets int64  `json:"websockets"` // websockets open now
}

// runHelper serves until SIGTERM or SIGKILL. Paths:
//
//	/status     200 {"version": ...}, as the checks expect
//	/hello      "hello from NAME"
//	/cut        head with Content-Length 100000, 10000 bytes, then close
//	/midchunk   chunked: one good chunk, then a malformed one
//	/badchunk   chunked whose first chunk is malformed (nothing sent yet)
//	/stall      head with Content-Length 1000000, 11 bytes, then nothing
//	            until the other side closes
//	/websocket  greets "hello from NAME", then ticks every -tick (0: never)
//	/stats      helperStats
func runHelper(args []string) error {
	fs := flag.NewFlagSet(helperCmd, flag.ContinueOnError)
	name := fs.String("name", "helper", "name in every answer")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	tick := fs.Duration("tick", 0, "websocket message period; 0: idle websockets")
	good := fs.Bool("good", false, "answer /cut, /midchunk and /badchunk with a whole body (a healthy backup)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var st helperStats
	st.Name = *name
	raw := func(w http.ResponseWriter, resp string, after func(net.Conn)) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		bw.WriteString(resp)
		if bw.Flush() == nil && after != nil {
			after(c)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&st.Status, 1)
		fmt.Fprintf(w, `{"version": "bench", "name": %q}`+"\n", *name)
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&st.Hello, 1)
		fmt.Fprintf(w, "hello from %s\n", *name)
	})
	whole := func(w http.ResponseWriter, r *http.Request) bool {
		if *good {
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte(strings.Repeat("x", 100000)))
		}
		return *good
	}
	mux.HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		if whole(w, r) {
			return
		}
		raw(w, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 10000), nil)
	})
	mux.HandleFunc("/midchunk", func(w http.ResponseWriter, r *http.Request) {
		if whole(w, r) {
			return
		}
		raw(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
			fmt.Sprintf("%x\r\n%s\r\n", 10000, strings.Repeat("x", 10000))+"zz\r\nbroken\r\n0\r\n\r\n", nil)
	})
	mux.HandleFunc("/badchunk", func(w http.ResponseWriter, r *http.Request) {
		if whole(w, r) {
			return
		}
		raw(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", nil)
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		raw(w, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst bytes", func(c net.Conn) {
			atomic.AddInt64(&st.Stalled, 1)
			defer atomic.AddInt64(&st.Stalled, -1)
			// Whatever comes (the next request of a kept-alive connection)
			// is ignored; the read ends when the other side closes.
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		})
	})
	mux.HandleFunc("/websocket", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		atomic.AddInt64(&st.Websockets, 1)
		defer atomic.AddInt64(&st.Websockets, -1)
		ctx := c.CloseRead(r.Context())
		if err := c.Write(ctx, websocket.MessageText, []byte("hello from "+*name)); err != nil {
			return
		}
		if *tick <= 0 {
			<-ctx.Done()
			return
		}
		t := time.NewTicker(*tick)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "tick %d from %s", i, *name)); err != nil {
					return
				}
			}
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		out := helperStats{Name: st.Name, Status: atomic.LoadInt64(&st.Status), Hello: atomic.LoadInt64(&st.Hello),
			Stalled: atomic.LoadInt64(&st.Stalled), Websockets: atomic.LoadInt64(&st.Websockets)}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("helper %s: %w", *name, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "helper %s listening on %s, pid %d\n", *name, ln.Addr(), os.Getpid())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startHelper starts a helper backend named name on addr (the bench's own
// binary, run again) and waits until it listens.
func (e *env) startHelper(ctx context.Context, name, addr string, tick time.Duration, good bool) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("helper: %w", err)
	}
	return e.startListening(ctx, name, addr, self, helperCmd, "-name", name, "-addr", addr, "-tick", tick.String(), fmt.Sprintf("-good=%v", good))
}

// helperStatsOf reads GET /stats of the helper at addr.
func helperStatsOf(ctx context.Context, addr string) (helperStats, error) {
	var st helperStats
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return st, fmt.Errorf("helper stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("helper stats: %w", err)
	}
	return st, nil
}
