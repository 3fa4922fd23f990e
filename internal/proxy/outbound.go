package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// wireRequest is the request as it goes to the servers: rendered once
// from the client's request (outbound); each try sends a copy of it.
type wireRequest struct {
	upstream.Request
	// idempotent: the request may be processed twice (see idempotent).
	idempotent bool
	// attempt is the request of the current try (try fills it): kept
	// here, it costs no allocation a try.
	attempt upstream.Request
}

// wires holds the wireRequests of finished requests, with their buffers.
var wires = sync.Pool{New: func() any { return &wireRequest{Request: upstream.Request{Head: make([]byte, 0, 1024)}} }}

// errBadRequest: the request cannot be written to a server as it is
// (net/http's Transport refuses the same); the client gets 400.
var errBadRequest = errors.New("request not fit to forward")

// outbound renders the request for the servers (upgrade: asking to switch
// to the protocol the client asked for); release gives it back. It checks
// what it writes as net/http's Transport does (the method, the request
// target, Host, every header name and value): a request the parsers let
// through that could not be written as it means, it refuses
// (errBadRequest) rather than sends.
func outbound(r *http.Request, st *reqState, upgrade bool) (*wireRequest, error) {
	if !httpsyntax.Token(r.Method) {
		return nil, fmt.Errorf("%w: method %q", errBadRequest, r.Method)
	}
	if !httpsyntax.Host(r.Host) {
		return nil, fmt.Errorf("%w: Host %q", errBadRequest, r.Host)
	}
	wr := wires.Get().(*wireRequest)
	b := wr.Head[:0]
	b = append(b, r.Method...)
	b = append(b, ' ')
	if r.Method == http.MethodOptions && r.RequestURI == "*" {
		b = append(b, '*')
	} else {
		start := len(b)
		b = append(b, r.URL.RequestURI()...)
		if !target(b[start:]) {
			return wr.refuse(b, fmt.Errorf("%w: request target %q", errBadRequest, b[start:]))
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		// X-Tandem-Epoch and X-Tandem-Role are the gateway's word to the
		// servers: a client's own is never passed on.
		if notForwarded(k) || k == "X-Tandem-Epoch" || k == "X-Tandem-Role" || len(conn) > 0 && httpsyntax.HasToken(conn, k) {
			continue
		}
		if !httpsyntax.Token(k) {
			return wr.refuse(b, fmt.Errorf("%w: header name %q", errBadRequest, k))
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				// Say nothing rather than let a library name itself.
				continue
			}
			if !httpsyntax.FieldValue(v) {
				return wr.refuse(b, fmt.Errorf("%w: value of %s", errBadRequest, k))
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && httpsyntax.HasToken(te, "trailers") {
		b = append(b, "Te: trailers\r\n"...)
	}
	if upgrade {
		up := r.Header.Get("Upgrade")
		if !httpsyntax.FieldValue(up) {
			return wr.refuse(b, fmt.Errorf("%w: value of Upgrade", errBadRequest))
		}
		b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
		b = append(b, up...)
		b = append(b, "\r\n"...)
	}
	f := forwardedOf(r, st.table.Trusted)
	if !f.valid() {
		return wr.refuse(b, fmt.Errorf("%w: value of a forwarding header", errBadRequest))
	}
	b = f.appendTo(b)
	*wr = wireRequest{idempotent: idempotent(r), Request: upstream.Request{Ctx: r.Context(), Method: r.Method, Upgrade: upgrade,
		Head: b, ContentLength: r.ContentLength, Connect: st.group.Cfg.Timeouts.Connect.D(), BodyIdle: st.group.Cfg.Timeouts.BodyIdle.D()}}
	return wr, nil
}

// target reports whether b may be a request target on the request line:
// in origin form (a URL the parsers took with no path, or an opaque one,
// would not be), no control character (as net/http's Request.Write
// checks) and no space, which would end it early.
func target(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return len(b) > 0 && b[0] == '/'
}

// refuse gives wr, whose head is b so far, back to the pool and returns err.
func (wr *wireRequest) refuse(b []byte, err error) (*wireRequest, error) {
	wr.Head = b
	wr.release()
	return nil, err
}

// release gives wr back to the pool; it is not used after.
func (wr *wireRequest) release() {
	if cap(wr.Head) > 64<<10 {
		return
	}
	*wr = wireRequest{Request: upstream.Request{Head: wr.Head[:0]}}
	wires.Put(wr)
}

// notForwarded reports whether a client's header is left out of the
// outbound request: connection-specific headers, the body's framing, which
// the request writes itself (and Host, should a header map hold one: as
// net/http's Request.Write, only the request's Host is sent), and the
// forwarding headers, which are replaced.
func notForwarded(k string) bool {
	switch k {
	case "Host", "Content-Length", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded":
		return true
	}
	return httpsyntax.HopByHop(k)
}
