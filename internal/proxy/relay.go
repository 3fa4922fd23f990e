package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/route"
)

// wireRequest is the request as it goes to a server: rendered once from
// the client's request, written afresh on each try.
type wireRequest struct {
	ctx    context.Context
	method string
	// head is the request line and the header lines, the body's framing
	// aside: the client's headers minus the connection-specific ones, with
	// the forwarding headers (the epoch is written per try).
	head []byte
	// body and its length (-1: unknown, sent chunked); nil body: none.
	body          io.Reader
	contentLength int64
	// rewind returns the body again for another try, nil if it cannot.
	rewind func() io.Reader
	// connect bounds dialing the server.
	connect time.Duration
	// epoch, when hasEpoch, is written on each try: the epoch of the
	// decision that picked this try's server, so a retry that follows a
	// switch carries the new epoch, never an epoch its server does not own.
	epoch    uint64
	hasEpoch bool
	// idempotent requests may be sent again when a kept-alive connection
	// turns out closed; others are sent on a connection checked first.
	idempotent bool
}

// wires holds the wireRequests of finished requests, with their buffers.
var wires = sync.Pool{New: func() any { return &wireRequest{head: make([]byte, 0, 1024)} }}

// outbound renders the request for the servers; release gives it back.
func outbound(r *http.Request, st *reqState) *wireRequest {
	wr := wires.Get().(*wireRequest)
	b := wr.head[:0]
	b = append(b, r.Method...)
	b = append(b, ' ')
	if r.Method == http.MethodOptions && r.RequestURI == "*" {
		b = append(b, '*')
	} else {
		b = append(b, r.URL.RequestURI()...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		// X-Tandem-Epoch and X-Tandem-Role are the gateway's word to the
		// servers: a client's own is never passed on.
		if notForwarded(k) || k == "X-Tandem-Epoch" || k == "X-Tandem-Role" || len(conn) > 0 && namedIn(conn, k) {
			continue
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				// Say nothing rather than let a library name itself.
				continue
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := r.Header["Te"]; ok && headerHasToken(r.Header, "Te", "trailers") {
		b = append(b, "Te: trailers\r\n"...)
	}
	f := forwardedOf(r, st.table.Trusted)
	b = f.appendTo(b)
	*wr = wireRequest{ctx: r.Context(), method: r.Method, idempotent: idempotent(r), head: b, contentLength: r.ContentLength,
		connect: st.group.Cfg.Timeouts.Connect.D()}
	return wr
}

// release gives wr back to the pool; it is not used after.
func (wr *wireRequest) release() {
	if cap(wr.head) > 64<<10 {
		return
	}
	*wr = wireRequest{head: wr.head[:0]}
	wires.Put(wr)
}

// notForwarded reports whether a client's header is left out of the
// outbound request: connection-specific headers, the body's framing, which
// the request writes itself, and the forwarding headers, which are replaced.
func notForwarded(k string) bool {
	switch k {
	case "Content-Length", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded":
		return true
	}
	return hopHeader(k)
}

// hopHeader reports whether k concerns one connection only (RFC 9110
// 7.6.1): one of hopHeaders.
func hopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// namedIn reports whether the Connection header values conn name k.
func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" && http.CanonicalHeaderKey(name) == k {
				return true
			}
		}
	}
	return false
}

// write sends the request on bw and flushes it.
func (wr *wireRequest) write(bw *bufio.Writer) error {
	bw.Write(wr.head)
	if wr.hasEpoch {
		var num [20]byte
		bw.WriteString("X-Tandem-Epoch: ")
		bw.Write(strconv.AppendUint(num[:0], wr.epoch, 10))
		bw.WriteString("\r\n")
	}
	switch {
	case wr.body == nil:
		if wr.method == http.MethodPost || wr.method == http.MethodPut || wr.method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case wr.contentLength >= 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(wr.contentLength, 10))
		bw.WriteString("\r\n\r\n")
		n, err := io.Copy(bw, io.LimitReader(wr.body, wr.contentLength))
		if err != nil {
			return err
		}
		if n != wr.contentLength {
			return io.ErrUnexpectedEOF
		}
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, wr.body); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// forward sends a plain request to the group's server (with the retries
// that are safe) and relays the answer.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	wr := outbound(r, st)
	defer wr.release()
	resp, err := p.send(r, wr, st)
	if err != nil {
		p.fail(w, r, st, err)
		return
	}
	defer resp.Body.Close()
	p.respond(w, r, resp, st)
}

// respond relays the server's response: headers (minus connection-specific
// ones, with the listener's HSTS, sticky cookie and debug header), body
// and trailers. A body cut off midway aborts the client's response too, so
// the client does not take a truncated body for a whole one.
func (p *Proxy) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, st *reqState) {
	g := st.group
	st.status, st.answered = resp.StatusCode, true
	if resp.StatusCode >= 500 && g.Cfg.Passive.Count5xx {
		st.server.FailedAnswer("answered "+strconv.Itoa(resp.StatusCode), g.Cfg.Passive.MaxFails, g.Cfg.Passive.Window.D())
	}
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopHeader(k) || k == "Strict-Transport-Security" && st.hsts != "" || len(conn) > 0 && namedIn(conn, k) {
			continue
		}
		h[k] = vv
	}
	if g.Cfg.ExposeServer {
		h.Set("X-Tandem-Server", st.server.Name)
	}
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
	// Stream answers of unknown length (server-sent events, long polls) as
	// they come; buffer the others.
	flush := resp.ContentLength < 0
	if err := copyBody(w, resp.Body, flush); err != nil {
		if r.Context().Err() == nil {
			p.log.Debug("response body cut off", "group", g.Name, "server", st.server.Name, "error", err)
		}
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// copyBody copies a response body with a pooled buffer, flushing after each
// read when asked.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(buf)
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
			return err
		}
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
