package h1

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
)

// pendingMax is how much body a handler may write before its head, with
// no Content-Length, before the answer goes out chunked (net/http: 2 KiB).
const pendingMax = 2 << 10

// response is the fast path's http.ResponseWriter: the head goes out at
// the first body write that cannot wait, at Flush or when the handler
// returns, framed as net/http frames it (its Content-Length, else one
// counted when the handler returned, else chunked).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	// own is the connection's reused header map: header unless the
	// handler gave one of its own (UseHeader).
	own http.Header
	// snap is the header as it was at WriteHeader, when the head could not
	// go out then: what the handler changes later is not in the head (as
	// with net/http), only in the trailers.
	snap   http.Header
	status int
	isHEAD bool
	// wroteHeader: the status is set; headSent: the head is in the writer.
	wroteHeader, headSent bool
	chunked               bool
	cl                    int64 // the Content-Length, -1: none
	written               int64
	closeAfter            bool
	// pending holds what was written before the head, when its length
	// was not known.
	pending []byte
	// trailers declared in the Trailer header, sent after a chunked body.
	trailers []string
	// unreadBody: the connection closes with body bytes unread.
	unreadBody bool
	// badCL: the handler set a Content-Length that was not a length.
	badCL bool
}

func (w *response) reset(c *conn, r *http.Request) {
	h, pending := w.own, w.pending[:0]
	clear(h)
	*w = response{c: c, req: r, header: h, own: h, cl: -1, pending: pending, closeAfter: r.Close, isHEAD: r.Method == http.MethodHead}
}

func (w *response) Header() http.Header { return w.header }

// UseHeader makes h the response's header, in place of the one Header
// returned so far (whose entries the caller took over), before the head
// is written: a proxy hands over the header it read from its server
// rather than copying each of its entries. h is the response's from then
// on (Header returns it); it must not be used elsewhere. After
// WriteHeader it is ignored.
func (w *response) UseHeader(h http.Header) {
	if !w.wroteHeader && h != nil {
		w.header = h
	}
}

// Hijack hands the connection to the handler, for a protocol upgrade. The
// client watch stops first (it holds the socket's read lock while it
// waits), the connection leaves the server's count, and the reader keeps
// what the client sent after the head. The request's context stays live
// until the handler returns, as with net/http.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("h1: Hijack after the response head")
	}
	c.ctx.stopWatch()
	c.hijacked = true
	c.s.untrack(c)
	c.nc.SetDeadline(time.Time{})
	return c.rw, bufio.NewReadWriter(c.br, c.bw), nil
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader, w.status = true, code
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
			w.badCL = true
		}
	}
	if w.framed() {
		// The body the handler may still read stays: it is dropped at
		// the first body write, as net/http does when its head goes out.
		w.sendHead(false, false, nil)
	} else {
		w.snap = w.header.Clone()
	}
}

// framed reports whether the head can go out at WriteHeader: the body's
// length and type need no look at the body (the proxy's usual case: the
// server's Content-Length and Content-Type).
func (w *response) framed() bool {
	if !bodyAllowed(w.status) {
		return true
	}
	if w.cl < 0 || w.isHEAD {
		return false
	}
	_, typed := w.header["Content-Type"]
	return typed || w.header.Get("Content-Encoding") != ""
}

// writeInterim sends a 1xx answer (103 Early Hints) at once.
func (w *response) writeInterim(code int) {
	bw := w.c.bw
	writeStatusLine(bw, code)
	// An interim answer has no body: no framing headers (as net/http).
	writeHeaders(bw, w.header, func(k string) bool { return k == "Content-Length" || k == "Transfer-Encoding" })
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		w.c.broken = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.headSent {
		// Kept (for a HEAD too: its length and type are the body's).
		if w.cl < 0 && len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		if err := w.sendHead(false, true, p); err != nil {
			return 0, err
		}
	}
	if w.isHEAD {
		return len(p), nil
	}
	w.settleBody()
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked {
		bw.WriteString("\r\n")
	}
	if err != nil {
		w.c.broken = true
	}
	return n, err
}

// Flush sends the head and what is buffered: a streamed answer (server-
// sent events) reaches the client as it comes.
func (w *response) Flush() { w.FlushError() }

func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if err := w.sendHead(false, true, nil); err != nil {
			return err
		}
	}
	w.settleBody()
	if err := w.c.bw.Flush(); err != nil {
		w.c.broken = true
		return err
	}
	return nil
}

// finish completes the answer once the handler returned.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		if err := w.sendHead(true, true, nil); err != nil {
			return err
		}
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			writeValues(bw, k, w.header[k])
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeValues(bw, name, vv)
			}
		}
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written != w.cl && !w.isHEAD && bodyAllowed(w.status) {
		// A body shorter than announced: the client would wait for the
		// rest; only closing tells it. Longer (the rest refused): the
		// handler is out of step with its own head; net/http closes too.
		w.closeAfter = true
	}
	w.settleBody()
	if !w.closeAfter && w.c.flushLater() {
		return nil // it goes out as the wait for the next request begins
	}
	return w.c.flush()
}

// settleBody reads and drops what the handler left of the request body
// before the answer's body goes out: a client that sends its whole
// request before reading any answer would deadlock otherwise (as with
// net/http). With too much left, the connection closes after the answer.
func (w *response) settleBody() {
	if !w.closeAfter && !w.c.body.drain() {
		w.closeAfter, w.unreadBody = true, true
	}
}

// sendHead writes the status line and headers, deciding the framing: done
// tells that the handler returned (so the pending body is all of it),
// settle that the unread request body is to be dropped first (so that the
// head can say Connection: close when it is too long), sniff is the first
// body bytes when none are pending.
func (w *response) sendHead(done, settle bool, sniff []byte) error {
	w.headSent = true
	h, code := w.header, w.status
	if w.snap != nil {
		h = w.snap
	}
	if settle {
		w.settleBody()
	}
	// Any Trailer header, even an empty one, means trailers to net/http:
	// the body goes chunked.
	_, trailers := h["Trailer"]
	for _, v := range h["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailers = true
		}
	}
	allowed := bodyAllowed(code)
	if len(w.pending) > 0 {
		sniff = w.pending
	}
	// Not after an invalid Content-Length of the handler's: net/http
	// frames that body chunked (FuzzResponseWriter).
	autoCL := done && !trailers && allowed && w.cl < 0 && !w.badCL && (!w.isHEAD || len(w.pending) > 0)
	if autoCL {
		w.cl = int64(len(w.pending))
	}
	if v := h["Connection"]; len(v) > 0 && v[0] == "close" || w.c.s.closing.Load() {
		w.closeAfter = true
	}
	var ctype string
	if allowed {
		if _, ok := h["Content-Type"]; !ok && h.Get("Content-Encoding") == "" && len(sniff) > 0 {
			ctype = http.DetectContentType(sniff)
		}
	}
	w.chunked = !w.isHEAD && allowed && code != http.StatusNoContent && w.cl < 0

	bw := w.c.bw
	writeStatusLine(bw, code)
	writeHeaders(bw, h, func(k string) bool {
		switch k {
		case "Transfer-Encoding":
			return true
		case "Content-Length":
			return w.chunked || !allowed
		case "Content-Type":
			return code == http.StatusNotModified
		case "Connection":
			return w.closeAfter
		}
		return strings.HasPrefix(k, http.TrailerPrefix)
	})
	if autoCL {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(w.cl, 10))
		bw.WriteString("\r\n")
	}
	if ctype != "" {
		bw.WriteString("Content-Type: ")
		bw.WriteString(ctype)
		bw.WriteString("\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(date())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.pending) > 0 && !w.isHEAD {
		p := w.pending
		w.pending = w.pending[:0]
		if _, err := w.writeBody(p); err != nil {
			return err
		}
	}
	return nil
}

type stringWriter interface {
	WriteString(string) (int, error)
	Write([]byte) (int, error)
}

func writeStatusLine(bw stringWriter, code int) {
	bw.WriteString("HTTP/1.1 ")
	var num [3]byte
	bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	bw.WriteString(" ")
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// writeHeaders writes h but the keys skip reports; like net/http it drops
// names that are not tokens and turns CR and LF in values into spaces, so
// no handler can split the response.
func writeHeaders(bw stringWriter, h http.Header, skip func(string) bool) {
	for k, vv := range h {
		if skip != nil && skip(k) {
			continue
		}
		writeValues(bw, k, vv)
	}
}

func writeValues(bw stringWriter, k string, vv []string) {
	if !httpsyntax.Token(k) {
		return
	}
	for _, v := range vv {
		if !cleanValue(v) {
			v = strings.Trim(newlineToSpace.Replace(v), " \t")
		}
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
}

var newlineToSpace = strings.NewReplacer("\r", " ", "\n", " ")

// cleanValue reports whether v goes on the wire as it is: no CR or LF, no
// space or tab at either end.
func cleanValue(v string) bool {
	if v != "" && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			return false
		}
	}
	return true
}

// bodyAllowed reports whether a response with status code may have a body
// (RFC 9112 6.3).
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// dateEntry is the Date header value of one second.
type dateEntry struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[dateEntry]

// date returns the Date header value of now, formatted once a second.
func date() []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateEntry{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return d.b
}
