package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// interposer is a small HTTP proxy of the bench's own between the proxies
// under test and the master. The kernel here has no netem, and the demo app
// cannot be told to be slow or to fail only on one instance, so the faults
// that need that are made here: the app itself stays untouched, and both
// proxies see exactly the same master.
type interposer struct {
	srv   *http.Server
	addr  string
	mode  atomic.Int32
	delay time.Duration
}

// Modes of the interposer.
const (
	passThrough int32 = iota
	// addLatency holds every request, /status included, for delay before
	// forwarding it: a slow master (or a slow link to it) as a whole.
	addLatency
	// failTraffic forwards every request but /status to the app's /error,
	// so health checks pass while traffic gets the master's 500s.
	failTraffic
	// muteTraffic holds every request but /status until the mode ends (or
	// its client leaves): a master that accepts requests and answers none
	// while its checks pass.
	muteTraffic
	// breakTraffic answers every request but /status with a head no
	// client may accept (two Content-Lengths) while checks pass.
	breakTraffic
)

// startInterposer listens on a free loopback port and forwards to target.
func startInterposer(target string, delay time.Duration) (*interposer, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, fmt.Errorf("interposer target %s: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("interposer: %w", err)
	}
	ip := &interposer{addr: ln.Addr().String(), delay: delay}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			if ip.mode.Load() == failTraffic && pr.In.URL.Path != "/status" {
				pr.Out.URL.Path, pr.Out.URL.RawPath = "/error", ""
			}
		},
		// Enough idle connections for every client of a scenario: the
		// default of 2 would make the master path dial per request.
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024,
			IdleConnTimeout: 90 * time.Second, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The proxy in front gave up (its timeout) or the app is gone.
			if r.Context().Err() == nil {
				w.WriteHeader(http.StatusBadGateway)
			}
		},
	}
	ip.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			for ip.mode.Load() == muteTraffic {
				select {
				case <-time.After(20 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			if ip.mode.Load() == breakTraffic {
				if c, bw, err := http.NewResponseController(w).Hijack(); err == nil {
					bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello")
					bw.Flush()
					c.Close()
				}
				return
			}
		}
		if ip.mode.Load() == addLatency {
			t := time.NewTimer(ip.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go func() {
		if err := ip.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "interposer: %v\n", err)
		}
	}()
	return ip, nil
}

func (ip *interposer) set(mode int32) { ip.mode.Store(mode) }

func (ip *interposer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ip.srv.Shutdown(ctx); err != nil {
		ip.srv.Close()
	}
}
