package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"
)

// loadSpec is one run of the built-in load generator: Clients keep-alive
// clients, each with its own connection, send GET URL back to back.
type loadSpec struct {
	URL      string
	Clients  int
	Duration time.Duration // no request starts after this
	Timeout  time.Duration // bound of one request, connect to last body byte
	MaxPer   int           // bound of requests per client, so memory stays bounded
	// Grace lets requests in flight at Duration finish; whatever is still
	// running after Duration+Grace is cut and counted as such, not as failed.
	Grace time.Duration
}

// outcome classifies one request.
type outcome uint8

const (
	outOK        outcome = iota // 2xx
	outStatus                   // an answer, not 2xx
	outTimeout                  // no complete answer within Timeout
	outTransport                // connection refused, reset, closed
	outCut                      // still running when the run ended
)

// sample is one request. Times are offsets from the run's start so that
// scenario events (kill, restart) and responses share one clock.
type sample struct {
	start, end time.Duration
	status     int
	server     string // from the body "hello from NAME ...", "" if none
	outcome    outcome
	why        string // of a transport error: "eof", "reset", ...
	// replayed: the reused connection was closed without an answer and the
	// request was sent again on a new one, as browsers and net/http do.
	replayed bool
	// retryAfter: the answer had a Retry-After header (a 503 that tells
	// clients when to come back).
	retryAfter bool
}

func (s sample) latency() time.Duration { return s.end - s.start }
func (s sample) failed() bool {
	return s.outcome == outStatus || s.outcome == outTimeout || s.outcome == outTransport
}

// runLoad runs spec with t0 as time zero and returns every sample, sorted by
// completion time.
func runLoad(ctx context.Context, spec loadSpec, t0 time.Time) []sample {
	ctx, cancel := context.WithDeadline(ctx, t0.Add(spec.Duration+spec.Grace))
	defer cancel()
	per := make([][]sample, spec.Clients)
	var wg sync.WaitGroup
	for i := range spec.Clients {
		wg.Go(func() { per[i] = runClient(ctx, spec, t0) })
	}
	wg.Wait()
	all := slices.Concat(per...)
	slices.SortFunc(all, func(a, b sample) int { return int(a.end - b.end) })
	return all
}

// runClient is one client: one connection reused for every request, so
// that the measure is the proxy's keep-alive path, as with wrk.
func runClient(ctx context.Context, spec loadSpec, t0 time.Time) []sample {
	c, err := newRawClient(ctx, spec.URL, spec.Timeout)
	if err != nil {
		return []sample{{outcome: outTransport, why: "bad url"}}
	}
	defer c.close()
	out := make([]sample, 0, 1024)
	for range spec.MaxPer {
		start := time.Since(t0)
		if start >= spec.Duration || ctx.Err() != nil {
			break
		}
		s := c.get(ctx)
		s.start, s.end = start, time.Since(t0)
		out = append(out, s)
	}
	return out
}

// rawClient speaks HTTP/1.1 on one net.Conn. net/http's Client costs two
// goroutines and a context per request: on a small machine that starves
// the proxies it measures, so the client writes a prepared request and
// parses the answer with http.ReadResponse, and nothing more.
type rawClient struct {
	addr    string
	req     []byte
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	buf     bytes.Buffer // body of the last answer, reused
	unhook  func() bool  // detaches the ctx watcher of conn
	tls     *tls.Config  // HTTPS: a TLS handshake after each dial; nil: plain
}

func newRawClient(ctx context.Context, rawURL string, timeout time.Duration) (*rawClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: only http:// and https:// are supported", rawURL)
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tandem-bench\r\n\r\n", u.RequestURI(), u.Host)
	c := &rawClient{addr: u.Host, req: []byte(req), timeout: timeout}
	if u.Scheme == "https" {
		c.tls = clientTLS.Clone()
		c.tls.ServerName = u.Hostname()
	}
	return c, nil
}

// get sends the request once, or twice when a reused connection turns out
// to be closed before any answer, as browsers and net/http do.
func (c *rawClient) get(ctx context.Context) sample {
	reused := c.conn != nil
	s, stale := c.try(ctx)
	if stale && reused && ctx.Err() == nil {
		s, _ = c.try(ctx)
		s.replayed = true
	}
	return s
}

// try reports stale when the connection ended before the first byte of an
// answer, the case where a replay is safe.
func (c *rawClient) try(ctx context.Context) (s sample, stale bool) {
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return failure(ctx, err), false
		}
	}
	// One deadline bounds the whole exchange; a cancelled ctx moves it to
	// the past (see dial), which unblocks a read at once.
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.close()
		return failure(ctx, err), false
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return failure(ctx, err), true
	}
	// Peek first: ReadResponse reports a close before any byte as
	// ErrUnexpectedEOF, the same as one in the middle of the status line.
	if _, err := c.br.Peek(1); err != nil {
		c.close()
		return failure(ctx, err), errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return failure(ctx, err), false
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	s = sample{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After") != ""}
	switch {
	case err != nil:
		s = failure(ctx, err)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		s.outcome = outStatus
	default:
		s.outcome = outOK
		s.server = servedBy(c.buf.Bytes())
	}
	return s, false
}

func (c *rawClient) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.addr, err)
	}
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		hctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return fmt.Errorf("TLS handshake with %s: %w", c.addr, err)
		}
		conn = tc
	}
	c.conn, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
	c.unhook = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (c *rawClient) close() {
	if c.conn == nil {
		return
	}
	c.unhook()
	c.conn.Close()
	c.conn, c.br = nil, nil
}

// failure is the sample of a request that got no complete answer.
func failure(ctx context.Context, err error) sample {
	return sample{outcome: classify(ctx, err), why: errorKind(err)}
}

// errorKind names an error in a word, so that failures can be counted by kind.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error"
	}
}

func classify(ctx context.Context, err error) outcome {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return outCut
	case errors.As(err, &ne) && ne.Timeout():
		return outTimeout
	default:
		return outTransport
	}
}

// servedBy extracts NAME from the demo app's "hello from NAME (request N)".
func servedBy(body []byte) string {
	rest, ok := bytes.CutPrefix(body, []byte("hello from "))
	if !ok {
		return ""
	}
	name, _, _ := bytes.Cut(rest, []byte(" "))
	return string(bytes.TrimSpace(name))
}
