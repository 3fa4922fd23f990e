package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/route"
)

// send delivers wr to the server the group picks and, when that fails, to
// the next one, as far as replaying is safe:
//   - a request that could not be sent (dial error) is always retried;
//   - once sent, only an idempotent request whose body is buffered is;
//   - a client that went away ends the request, and is no server's fault.
//
// idempotent reports whether r may be replayed after it was sent.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

func (p *Proxy) send(r *http.Request, wr *wireRequest, st *reqState) (*http.Response, error) {
	g := st.group
	body, err := newReplayBody(r.Body, r.ContentLength, idempotent(r), int64(g.Cfg.Retry.BufferBytes))
	if err != nil {
		return nil, err
	}
	defer body.closeIfUnused()
	deadline := st.start.Add(g.Cfg.Timeouts.Response.D())
	var lastErr error
	var triedA [4]*backend.Server
	tried := triedA[:0]
	repicks := 0
	for try := 0; try < g.Cfg.Retry.Attempts; try++ {
		choice, err := g.Pick(r.Context(), st.host, st.cookie, tried)
		if err != nil {
			return nil, noServer(lastErr)
		}
		s := choice.Server
		tried = append(tried, s)
		st.server = s
		if try > 0 {
			st.retries++
		}
		resp, err := p.try(g, wr, choice, body, deadline, g.Cfg.Retry.PerTryTimeout.D())
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if r.Context().Err() != nil {
			return nil, fmt.Errorf("%w: %w", errClientGone, r.Context().Err())
		}
		if ce := body.clientErr.Load(); ce != nil {
			return nil, *ce
		}
		pc := g.Cfg.Passive
		switch {
		case errors.Is(err, errRepick):
			// Nothing was sent: s was not tried, and the pick does not
			// count as an attempt (a few times: decisions settle).
			if repicks < maxRepicks {
				repicks++
				tried = tried[:len(tried)-1]
				try--
			}
			continue
		case errors.Is(err, errAbandoned):
			// The server went down or lost the active role while this try
			// waited: not a failure of its own to count. Replay what the
			// rules allow on the server now active; the rest gets 502.
			if !wr.idempotent || !body.replayable() || time.Now().After(deadline) {
				return nil, err
			}
			continue
		case backend.LocalError(err):
			// The gateway is short of fds, buffers or ports: no server's
			// fault, and the next would fail alike. Nothing was marked.
			return nil, fmt.Errorf("%w: %w", errLocal, err)
		case isDialError(err):
			// Refused, reset or timed out before anything was sent: the
			// server is down now, not at the next check.
			s.Eject("passive: "+reason(err), dialEjection(pc, g.Cfg.Health, s))
			continue
		default:
			// Timed out or broken after sending: count it, and have the
			// prober look now rather than at its next interval.
			s.Failure("passive: "+reason(err), pc.MaxFails, pc.Window.D(), failureEjection(g, s, err))
			s.Kick()
		}
		if !body.replayable() || time.Now().After(deadline) {
			return nil, err
		}
	}
	return nil, noServer(lastErr)
}

// maxRepicks bounds the picks made again, per request, because the
// decision changed between a pick and its try.
const maxRepicks = 3

// noServer is the error when no try could reach a server: 503, for a
// client may come back shortly, rather than 502. Other errors stand.
func noServer(lastErr error) error {
	if lastErr == nil {
		return errNoServer
	}
	if isDialError(lastErr) || errors.Is(lastErr, errAbandoned) || errors.Is(lastErr, errRepick) {
		// Nothing answered, and no other server can: 503, come back soon.
		return fmt.Errorf("%w: %w", errNoServer, lastErr)
	}
	return lastErr
}

// try sends one attempt to the chosen server, bounded by the per-try timeout
// and the request's overall deadline for response headers.
func (p *Proxy) try(g *route.Group, wr *wireRequest, choice route.Choice, body *replayBody, deadline time.Time, perTry time.Duration) (*http.Response, error) {
	now := time.Now()
	wait := deadline.Sub(now)
	if perTry > 0 && perTry < wait {
		wait = perTry
	}
	if wait <= 0 {
		return nil, errTimeout
	}
	attempt := *wr
	attempt.body, attempt.rewind = body.next()
	attempt.epoch, attempt.hasEpoch = choice.Epoch, choice.HasEpoch
	attempt.server, attempt.gen, attempt.pinned = choice.Server, choice.Server.RoleGen(), choice.Pinned
	if moved(g, choice) {
		// The decision that picked the server was replaced before the try
		// began: pick again rather than send to a former active server.
		return nil, errRepick
	}
	attempt.stallAfter, attempt.onStall = g.Cfg.Passive.NoProgressAfter(), p.onStall
	return p.up.roundTrip(&attempt, choice.Server.Address, now, now.Add(wait))
}

// moved reports whether the group's committed decision changed since
// choice was picked from it (a pinned choice does not follow it).
func moved(g *route.Group, choice route.Choice) bool {
	return g.Elector != nil && choice.HasEpoch && !choice.Pinned && g.Elector.Epoch() != choice.Epoch
}

// replayBody hands each try a body. A buffered body can be replayed; a
// streamed one only until the first byte of it was read.
type replayBody struct {
	orig     io.ReadCloser
	buf      []byte // whole body when buffered
	buffered bool
	rest     io.Reader // streamed remainder after buf (not buffered)
	read     atomic.Bool
	// clientErr is the error reading the client's body (too large, cut
	// off): the request fails for the client's sake, not the server's.
	clientErr atomic.Pointer[error]
}

// noReplayBody is the body of every request without one.
var noReplayBody = &replayBody{buffered: true}

func newReplayBody(rb io.ReadCloser, contentLength int64, idem bool, limit int64) (*replayBody, error) {
	if rb == nil || rb == http.NoBody {
		return noReplayBody, nil
	}
	b := &replayBody{orig: rb}
	if !idem || contentLength > limit {
		b.rest = rb
		return b, nil
	}
	// Read up to limit+1 bytes: a body that fits is kept to replay.
	buf, err := io.ReadAll(io.LimitReader(rb, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) <= limit {
		b.buf, b.buffered = buf, true
		return b, nil
	}
	b.buf, b.rest = buf, io.MultiReader(bytes.NewReader(buf), rb)
	return b, nil
}

// next returns the body for one try (nil for none), and a rewind function
// when it can be sent again.
func (b *replayBody) next() (io.Reader, func() io.Reader) {
	if b.buffered {
		if b.orig == nil || b.orig == http.NoBody {
			return nil, nil
		}
		rewind := func() io.Reader { return bytes.NewReader(b.buf) }
		return rewind(), rewind
	}
	return &trackedBody{r: b.rest, body: b}, nil
}

// replayable reports whether another try can send the body again.
func (b *replayBody) replayable() bool { return b.buffered || !b.read.Load() }

// closeIfUnused closes the original body; net/http's server closes it too, and a
// double close of a request body is harmless.
func (b *replayBody) closeIfUnused() {
	if b.orig != nil {
		b.orig.Close()
	}
}

// trackedBody records whether a try read anything from a streamed body,
// and why reading it failed.
type trackedBody struct {
	r    io.Reader
	body *replayBody
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 || err == io.EOF {
		t.body.read.Store(true)
	}
	if err != nil && err != io.EOF {
		t.body.clientErr.Store(&err)
	}
	return n, err
}
