package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsFleet is many websockets held open through a proxy, each with a
// goroutine reading until it closes, for the scenarios that count what a
// proxy does with thousands of them (issue 9 items 6, 7 and 9).
type wsFleet struct {
	mu       sync.Mutex
	dialErrs map[string]int // failed dials by kind
	closes   map[string]int // closes while held, by code or error
	open     atomic.Int64
	opened   atomic.Int64
	conns    []*websocket.Conn
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// wsDialer is a websocket dialer on loopback with no proxy from the
// environment; the 101 connections are hijacked, so one transport serves all.
var wsClient = &http.Client{Transport: &http.Transport{Proxy: nil,
	DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}

// wsDial opens one websocket and reads its greeting ("hello from NAME"):
// it returns the conn and the server's name.
func wsDial(ctx context.Context, url string, timeout time.Duration) (*websocket.Conn, string, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: wsClient})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, "", fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		return nil, "", err
	}
	c.SetReadLimit(1 << 16)
	_, msg, err := c.Read(dctx)
	if err != nil {
		c.CloseNow()
		return nil, "", fmt.Errorf("greeting: %w", err)
	}
	return c, servedBy(msg), nil
}

// wsErrKind names a failed dial or read in a word or two.
func wsErrKind(err error) string {
	if code := websocket.CloseStatus(err); code != -1 {
		return fmt.Sprintf("close %d", code)
	}
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "status "):
		st, _, _ := strings.Cut(strings.TrimPrefix(s, "status "), ":")
		return "HTTP " + st
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case strings.Contains(s, "too many open files"):
		return "EMFILE"
	}
	return errorKind(err)
}

// openFleet opens n websockets to url, par at a time, each given timeout
// to connect and greet, and ends its attempts at deadline: bounded in
// count and time.
func openFleet(ctx context.Context, url string, n, par int, timeout time.Duration, deadline time.Time) *wsFleet {
	f := &wsFleet{dialErrs: map[string]int{}, closes: map[string]int{}}
	f.ctx, f.cancel = context.WithCancel(ctx)
	next := atomic.Int64{}
	var dialers sync.WaitGroup
	for range min(par, n) {
		dialers.Go(func() {
			for next.Add(1) <= int64(n) {
				if time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				c, _, err := wsDial(f.ctx, url, timeout)
				if err != nil {
					f.mu.Lock()
					f.dialErrs[wsErrKind(err)]++
					f.mu.Unlock()
					continue
				}
				f.opened.Add(1)
				f.open.Add(1)
				f.mu.Lock()
				f.conns = append(f.conns, c)
				f.mu.Unlock()
				f.wg.Go(func() {
					for {
						if _, _, err := c.Read(f.ctx); err != nil {
							f.open.Add(-1)
							if f.ctx.Err() == nil {
								f.mu.Lock()
								f.closes[wsErrKind(err)]++
								f.mu.Unlock()
							}
							return
						}
					}
				})
			}
		})
	}
	dialers.Wait()
	return f
}

// failedDials is how many dials failed, and why.
func (f *wsFleet) failedDials() (int, string) { return f.tally(f.dialErrs) }

// closed is how many held websockets closed before the fleet did, and why.
func (f *wsFleet) closed() (int, string) { return f.tally(f.closes) }

// tally adds up one of the fleet's counts by kind, and says them.
func (f *wsFleet) tally(m map[string]int) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range m {
		n += v
	}
	return n, summarize(m)
}

// close ends every websocket of the fleet and waits for their readers.
func (f *wsFleet) close() {
	f.cancel()
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
	f.wg.Wait()
}
