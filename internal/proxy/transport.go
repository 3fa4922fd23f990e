package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/route"
)

// idempotent reports whether r may be processed twice: its method says
// so (RFC 9110 9.2.2), or the client gave it an Idempotency-Key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// failedTry is what the retry rule is told of a try that failed.
type failedTry struct {
	err error
	// idempotent: the request may be processed twice (see idempotent).
	idempotent bool
	// replayable: its body can be sent again: none, buffered, or none of
	// it read yet.
	replayable bool
	// clientGone: the client went away, or reading its body failed.
	clientGone bool
	// expired: the request's time for response headers ran out.
	expired bool
}

// verdict is what follows a failed try.
type verdict uint8

const (
	giveUp verdict = iota // the request fails with the try's error
	again                 // the same server, on a new connection: not another attempt
	repick                // pick again (nothing was sent): not another attempt
	next                  // the next server, as another attempt
)

var verdicts = [...]string{giveUp: "give up", again: "again", repick: "repick", next: "next"}

func (v verdict) String() string { return verdicts[v] }

// retry is the one rule that decides whether a failed try may be
// repeated, for plain requests and upgrades alike:
//   - never for a client that went away (no server's fault, nobody to
//     answer), nor for the gateway's own shortage (the next server would
//     fail alike);
//   - always when nothing was sent: a failure to connect goes to the next
//     server; a pick that the decision overtook is made again;
//   - once sent, within the request's time and only for an idempotent
//     request whose body can be sent again: on a new connection to the
//     same server when a kept-alive one turned out closed (the server
//     may have acted on it before closing: RFC 9110 9.2.2), else on the
//     next server (a timeout, a reset, a server that went down or lost
//     the role while the try waited).
func retry(f failedTry) verdict {
	switch {
	case f.clientGone, backend.LocalError(f.err):
		return giveUp
	case errors.Is(f.err, errRepick):
		return repick
	case isDialError(f.err):
		return next
	case f.expired, !mayResend(f.idempotent, f.replayable):
		return giveUp
	case errors.Is(f.err, errStale):
		return again
	}
	return next
}

// mayResend is the rule's word on a request that was sent: it may be sent
// again when it is idempotent and its body can be sent again. A request
// that may not goes on a kept-alive connection only once that connection
// was checked for a close from the server.
func mayResend(idem, replayable bool) bool { return idem && replayable }

// send delivers wr to the server the group picks and, as far as the
// retry rule lets it, to the next one (or again, on a new connection).
// wr is a plain request, or one to switch protocols (wr.Upgrade), whose
// 101 answer's Body is the connection (see upstream.Client.Upgrade).
func (p *Proxy) send(r *http.Request, wr *wireRequest, st *reqState) (*http.Response, error) {
	g := st.group
	body, err := newReplayBody(r.Body, r.ContentLength, wr.idempotent, int64(g.Cfg.Retry.BufferBytes))
	if err != nil {
		return nil, err
	}
	defer body.closeIfUnused()
	deadline := st.start.Add(g.Cfg.Timeouts.Response.D())
	var lastErr error
	var triedA [4]*backend.Server
	tried := triedA[:0]
	repicks := 0
	pickCtx := r.Context()
	for try := 0; try < g.Cfg.Retry.Attempts; try++ {
		choice, err := g.Pick(pickCtx, st.host, st.cookie, tried)
		if tc, ok := errors.AsType[route.TableChanged](err); ok && repicks < maxRepicks {
			if ng := p.table().Group(g.Name); ng != nil {
				// Not an attempt: the same request, picked from the new
				// table, waiting no longer in all than one hold.
				g, st.group = ng, ng
				repicks++
				try--
				var cancel context.CancelFunc
				pickCtx, cancel = context.WithDeadline(pickCtx, tc.HoldUntil)
				defer cancel()
				continue
			}
		}
		if err != nil {
			return nil, noServer(lastErr)
		}
		s := choice.Server
		tried = append(tried, s)
		st.server, st.pinned = s, choice.Pinned
		if try > 0 {
			st.retries++
		}
		v := again
		for v == again {
			resp, err := p.try(g, wr, choice, body, deadline, g.Cfg.Retry.PerTryTimeout.D())
			if err == nil {
				return resp, nil
			}
			lastErr = err
			f := failedTry{err: err, idempotent: wr.idempotent, replayable: body.replayable(),
				clientGone: r.Context().Err() != nil || body.clientErr.Load() != nil, expired: !time.Now().Before(deadline)}
			if !f.clientGone {
				p.blame(g, s, err, wr.Upgrade)
			}
			v = retry(f)
		}
		switch v {
		case giveUp:
			return nil, givenUp(r, body, lastErr)
		case repick:
			// s was not tried, and the pick does not count as an attempt
			// (a few times: decisions settle).
			if repicks < maxRepicks {
				repicks++
				tried = tried[:len(tried)-1]
				try--
			}
		}
	}
	return nil, noServer(lastErr)
}

// givenUp is the error of a request the retry rule gave up on.
func givenUp(r *http.Request, body *replayBody, err error) error {
	if r.Context().Err() != nil {
		return err // nobody to answer
	}
	if ce := body.clientErr.Load(); ce != nil {
		return *ce // the client's body (too large, cut off), not the server's doing
	}
	if backend.LocalError(err) {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	return err
}

// blame counts a failed try against its server when the failure is the
// server's: a failure to connect takes it down now rather than at the next
// check; a timeout or a broken exchange counts towards its passive
// limit, and has the prober look now. What is no server's doing counts
// for nothing (nor does a client gone, which the caller sees): the
// gateway's own shortage, a try given up before it began (the decision
// moved, no time left), a try abandoned because its server went down or
// lost the role meanwhile, a kept-alive connection the server had closed.
func (p *Proxy) blame(g *route.Group, s *backend.Server, err error, upgrade bool) {
	switch {
	case backend.LocalError(err), errors.Is(err, errRepick), errors.Is(err, errNoTimeLeft),
		errors.Is(err, errAbandoned), errors.Is(err, errStale):
	case errors.Is(err, errTimeout) && g.LastAvailable(s):
		// Slow, but the last server of its group that can answer at all
		// (a reconnect storm of websocket handshakes on the backup: issue
		// 9): ejecting it would only turn slow answers into 503s. Not
		// counted; a check looks at once, and its verdict stands.
		s.Kick()
	case isDialError(err):
		s.Eject("passive: "+reason(err), dialEjection(g.Cfg.Passive, g.Cfg.Health, s))
	default:
		what := "passive: "
		if upgrade {
			what = "passive: websocket handshake: "
		}
		pc := g.Cfg.Passive
		s.Failure(what+reason(err), pc.MaxFails, pc.Window.D(), failureEjection(g, s, err))
		s.Kick()
	}
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
		return nil, errNoTimeLeft
	}
	attempt := &wr.attempt
	*attempt = wr.Request
	var again bool
	attempt.Body, again = body.next()
	attempt.Epoch, attempt.HasEpoch = choice.Epoch, choice.HasEpoch
	attempt.Server, attempt.Gen, attempt.Pinned = choice.Server, choice.Server.RoleGen(), choice.Pinned
	if moved(g, choice) {
		// The decision that picked the server was replaced before the try
		// began: pick again rather than send to a former active server.
		return nil, errRepick
	}
	attempt.StallAfter, attempt.OnStall = g.Cfg.Passive.NoProgressAfter(), p.stalled
	if wr.Upgrade {
		return p.up.Upgrade(attempt, choice.Server.Address, now, now.Add(wait))
	}
	attempt.Resendable = mayResend(wr.idempotent, again)
	return p.up.RoundTrip(attempt, choice.Server.Address, now, now.Add(wait))
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

// next returns the body for one try (nil for none), and whether the try
// could send it again (on a new connection) once it was read: a buffered
// body or none.
func (b *replayBody) next() (io.Reader, bool) {
	if b.buffered {
		if b.orig == nil {
			return nil, true // noReplayBody: newReplayBody took http.NoBody for none
		}
		return bytes.NewReader(b.buf), true
	}
	return &trackedBody{r: b.rest, body: b}, false
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
