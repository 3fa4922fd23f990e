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
	"time"

	"github.com/tandemproxy/tandem/internal/route"
)

// wireRequest is the request as it goes to a server: built once from the
// client's request, written afresh on each try.
type wireRequest struct {
	ctx    context.Context
	method string
	uri    string
	host   string
	header http.Header
	// body and its length (-1: unknown, sent chunked); nil body: none.
	body          io.Reader
	contentLength int64
	// rewind returns the body again for another try, nil if it cannot.
	rewind func() io.Reader
	// connect bounds dialing the server.
	connect time.Duration
}

// outbound builds the request for the servers: the client's headers minus
// the connection-specific ones, with forwarding headers and the epoch.
func outbound(r *http.Request, st *reqState) *wireRequest {
	h := make(http.Header, len(r.Header)+5)
	for k, vv := range r.Header {
		h[k] = vv
	}
	dropHopHeaders(h)
	setForwardedHeader(h, r, st.table.Trusted)
	if e := st.group.Elector; e != nil {
		h["X-Tandem-Epoch"] = []string{strconv.FormatUint(e.Epoch(), 10)}
	}
	if _, ok := h["User-Agent"]; !ok {
		// Say nothing rather than let a library name itself.
		h["User-Agent"] = []string{""}
	}
	if te := r.Header.Values("Te"); len(te) > 0 && headerHasToken(r.Header, "Te", "trailers") {
		h["Te"] = []string{"trailers"}
	}
	uri := r.URL.RequestURI()
	if r.Method == http.MethodOptions && r.RequestURI == "*" {
		uri = "*"
	}
	return &wireRequest{ctx: r.Context(), method: r.Method, uri: uri, host: r.Host, header: h,
		contentLength: r.ContentLength, connect: st.group.Cfg.Timeouts.Connect.D()}
}

// dropHopHeaders removes the headers that concern one connection only
// (RFC 9110 7.6.1), including those the Connection header names.
func dropHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// write sends the request on bw and flushes it.
func (wr *wireRequest) write(bw *bufio.Writer) error {
	bw.WriteString(wr.method)
	bw.WriteByte(' ')
	bw.WriteString(wr.uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(wr.host)
	bw.WriteString("\r\n")
	for k, vv := range wr.header {
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
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
		st.server.SoftFailure("answered "+strconv.Itoa(resp.StatusCode), g.Cfg.Passive.MaxFails, g.Cfg.Passive.Window.D())
	}
	dropHopHeaders(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		if k == "Strict-Transport-Security" && st.hsts != "" {
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
	p.log.Warn("request failed", "group", st.group.Name, "server", server, "method", r.Method,
		"path", r.URL.Path, "status", code, "retries", st.retries, "error", reason(err))
	writeError(w, code)
}
