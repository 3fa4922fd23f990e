package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/httpsyntax"
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
	// idempotent: the request may be processed twice (see idempotent).
	idempotent bool
	// resendable: this try may be sent again when its kept-alive
	// connection turns out closed (errStale); when not, it goes on a
	// connection checked first.
	resendable bool
	// upgrade: the request asks to switch protocols (a websocket).
	upgrade bool
	// server is the try's server: a try that waits for its response head
	// registers there, to be abandoned if the server goes down or (unless
	// pinned) loses the active role after gen was read.
	server *backend.Server
	gen    uint64
	pinned bool
	// stallAfter arms no-progress detection (0: off); onStall reports it.
	stallAfter time.Duration
	onStall    func(*backend.Server, time.Duration, int)
	// bodyIdle bounds each wait for more of the response body.
	bodyIdle time.Duration
}

// wires holds the wireRequests of finished requests, with their buffers.
var wires = sync.Pool{New: func() any { return &wireRequest{head: make([]byte, 0, 1024)} }}

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
	b := wr.head[:0]
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
	*wr = wireRequest{ctx: r.Context(), method: r.Method, idempotent: idempotent(r), upgrade: upgrade, head: b, contentLength: r.ContentLength,
		connect: st.group.Cfg.Timeouts.Connect.D(), bodyIdle: st.group.Cfg.Timeouts.BodyIdle.D()}
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
	wr.head = b
	wr.release()
	return nil, err
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
