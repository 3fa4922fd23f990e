package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
	"github.com/tandemproxy/tandem/internal/route"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// forward sends a plain request to the group's server (with the retries
// that are safe) and relays the answer.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	resp, ok := p.sendOrFail(w, r, st, false)
	if !ok {
		return
	}
	defer resp.Body.Close()
	p.respond(w, r, resp, st)
}

// sendOrFail renders r for the servers (outbound) and sends it (send),
// or answers the client with why it could not.
func (p *Proxy) sendOrFail(w http.ResponseWriter, r *http.Request, st *reqState, upgrade bool) (*http.Response, bool) {
	wr, err := outbound(r, st, upgrade)
	if err == nil {
		var resp *http.Response
		resp, err = p.send(r, wr, st)
		wr.release() // the response holds nothing of it
		if err == nil {
			return resp, true
		}
	}
	p.fail(w, r, st, err)
	return nil, false
}

// respond relays the server's response: headers (minus connection-specific
// ones, with the listener's HSTS, sticky cookie and debug header), body
// and trailers. A body cut off midway aborts the client's response too, so
// the client does not take a truncated body for a whole one; one that
// fails before anything was sent gets 502 instead.
func (p *Proxy) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, st *reqState) {
	g := st.group
	st.status, st.answered = resp.StatusCode, true
	if resp.StatusCode >= 500 && g.Cfg.Passive.Count5xx {
		st.server.Failure("answered "+strconv.Itoa(resp.StatusCode), g.Cfg.Passive.MaxFails, g.Cfg.Passive.Window.D(), ejection(g.Cfg.Passive))
	}
	// Stream answers of unknown length (server-sent events, long polls) as
	// they come; buffer the others.
	flush := resp.ContentLength < 0
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	var first []byte
	var firstErr error
	if !flush || bodyBuffered(resp.Body) {
		// The first bytes of the body come before the head goes out, when
		// they are already here or the answer is buffered anyway: a body
		// that fails at once (a malformed first chunk, a close after the
		// head) gets a 502, not an empty reply.
		n, err := resp.Body.Read(*bp)
		if n == 0 && err != nil && err != io.EOF {
			p.bodyFailed(r, st, err)
			if r.Context().Err() == nil {
				st.status, st.answered = http.StatusBadGateway, false
				writeError(w, http.StatusBadGateway)
			}
			return
		}
		first, firstErr = (*bp)[:n], err
	}
	h := answerHeader(w, resp, st)
	if sc := g.Cfg.Sticky; sc != nil {
		if v := route.CookieValue(g.Name, st.server.Name); v != st.cookie {
			c := &http.Cookie{Name: sc.Cookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil}
			h.Add("Set-Cookie", c.String())
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyBody(w, resp.Body, flush, *bp, first, firstErr); err != nil {
		var be *bodyError
		if errors.As(err, &be) {
			p.bodyFailed(r, st, be.err)
			// The client gets what came, then the cut: the head and the
			// bytes relayed, rather than nothing at all if the listener's
			// server drops what it buffered on an abort (net/http's does;
			// h1's flushes it as it closes).
			_ = http.NewResponseController(w).Flush()
		}
		// Counted and logged now: the abort skips what follows the handler.
		p.record(r, st, false)
		st.recorded = true
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// responseHeader copies the header of a server's response to h, the
// client's, minus what concerns one connection only, and the listener's
// HSTS over the server's; with the server's name when the group shows it.
func responseHeader(h http.Header, resp *http.Response, st *reqState) {
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if passes(k, conn, st) {
			h[k] = vv
		}
	}
	exposeServer(h, st)
}

// passes reports whether the server's header field k goes on to the
// client: not hop-by-hop (nor named by the server's Connection), and not a
// Strict-Transport-Security the listener's own replaces.
func passes(k string, conn []string, st *reqState) bool {
	return !httpsyntax.HopByHop(k) && !(k == "Strict-Transport-Security" && st.hsts != "") &&
		!(len(conn) > 0 && httpsyntax.HasToken(conn, k))
}

func exposeServer(h http.Header, st *reqState) {
	if st.group.Cfg.ExposeServer {
		h.Set("X-Tandem-Server", st.server.Name)
	}
}

// headerUser is a ResponseWriter that takes a header whole (h1's).
type headerUser interface{ UseHeader(http.Header) }

// answerHeader makes the header of the answer to the client from resp's
// (responseHeader's rule) and what the gateway set already (the
// listener's HSTS), and returns it. A writer that takes a header whole
// gets the server's own, filtered in place, rather than each field copied
// into its own (five map insertions a request, and their hashing).
func answerHeader(w http.ResponseWriter, resp *http.Response, st *reqState) http.Header {
	hu, ok := w.(headerUser)
	if !ok || resp.Header == nil {
		h := w.Header()
		responseHeader(h, resp, st)
		return h
	}
	h := resp.Header
	conn := h["Connection"]
	for k := range h {
		if !passes(k, conn, st) {
			delete(h, k)
		}
	}
	// As when copying: the server's field wins over one the gateway set.
	for k, vv := range w.Header() {
		if _, ok := h[k]; !ok {
			h[k] = vv
		}
	}
	exposeServer(h, st)
	hu.UseHeader(h)
	return h
}

// bodyBuffered reports whether bytes of a server's body were read already.
func bodyBuffered(body io.Reader) bool {
	b, ok := body.(*upstream.Body)
	return ok && b.Buffered() > 0
}

// bodyError is a failure reading the server's response body (rather than
// writing it to the client).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading the response body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyFailed records a failure of the server's response body: a soft
// failure of the server (unless the client's leaving caused it), a
// sampled warning, and the reason in the request's metrics and access log.
func (p *Proxy) bodyFailed(r *http.Request, st *reqState, err error) {
	if r.Context().Err() != nil {
		return // the client went away: no fault of the server's
	}
	g := st.group
	st.bodyErr = "response body: " + reason(err)
	st.server.Failure("passive: "+st.bodyErr, g.Cfg.Passive.MaxFails, g.Cfg.Passive.Window.D(), ejection(g.Cfg.Passive))
	if n, ok := p.failLog.allow(time.Now()); ok {
		p.log.Warn("response body failed", "group", g.Name, "server", st.server.Name, "method", r.Method,
			"path", r.URL.Path, "status", st.status, "error", st.bodyErr, "suppressed", n)
	}
}

// copyBody copies a response body with buf, after the first bytes already
// read (and the error that came with them), flushing after each read when
// asked. A failure to read the body is a *bodyError.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool, buf, first []byte, firstErr error) error {
	rc := http.NewResponseController(w)
	n, err := len(first), firstErr
	if first == nil && err == nil {
		n, err = body.Read(buf)
	}
	for {
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &bodyError{err: err}
		}
		n, err = body.Read(buf)
	}
}

// fail answers a request that no try could complete.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	if r.Context().Err() != nil {
		// The client went away: not the server's fault, nobody to answer.
		st.status = 499
		return
	}
	code := statusFor(err)
	st.status = code
	server := ""
	if st.server != nil {
		server = st.server.Name
	}
	if n, ok := p.failLog.allow(time.Now()); ok {
		// Failures come in storms (both servers down: every request);
		// the metrics count each one, the log samples them.
		p.log.Warn("request failed", "group", st.group.Name, "server", server, "method", r.Method,
			"path", r.URL.Path, "status", code, "retries", st.retries, "error", reason(err), "suppressed", n)
	}
	writeError(w, code)
}
