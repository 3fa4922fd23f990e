package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/bufpool"
	"github.com/tandemproxy/tandem/internal/httpsyntax"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// Websocket close codes (RFC 6455 and IANA registry).
const (
	CloseGoingAway      uint16 = 1001
	CloseServiceRestart uint16 = 1012
)

// isUpgrade reports whether the request asks to switch protocols.
func isUpgrade(h http.Header) bool {
	return httpsyntax.HasToken(h["Connection"], "upgrade") && h.Get("Upgrade") != ""
}

// IsWebsocketHandshake reports whether r is a websocket opening handshake:
// a GET with Connection: upgrade and Upgrade: websocket. The guard answers
// 403 to anything else on a websocket path.
func IsWebsocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 && r.ProtoMinor >= 1 &&
		httpsyntax.HasToken(r.Header["Connection"], "upgrade") && httpsyntax.HasToken(r.Header["Upgrade"], "websocket")
}

// serveUpgrade proxies a protocol upgrade itself rather than through
// the plain request path, so that it owns both connections: it can track them per
// server and close them with a websocket close frame on a switch. The
// handshake goes the way of any request (send: the same outbound request,
// tries and retry rule), on a connection of its own.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request, st *reqState) {
	resp, ok := p.sendOrFail(w, r, st, true)
	if !ok {
		return
	}
	st.status, st.answered = resp.StatusCode, true
	up, ok := resp.Body.(*upstream.Upgraded)
	if !ok {
		p.relayResponse(w, resp, st)
		return
	}
	p.relayUpgrade(w, r, st, st.server, st.pinned, up.Conn, up.Reader, resp)
}

// relayResponse passes on a server's refusal to upgrade, its body cut at 1 MiB.
func (p *Proxy) relayResponse(w http.ResponseWriter, resp *http.Response, st *reqState) {
	defer resp.Body.Close()
	responseHeader(w.Header(), resp, st)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

// relayUpgrade hijacks the client, answers 101, and copies frames both
// ways until either side closes or the session is closed by a switch.
func (p *Proxy) relayUpgrade(w http.ResponseWriter, r *http.Request, st *reqState, s *backend.Server, pinned bool, back net.Conn, br *bufio.Reader, resp *http.Response) {
	if !strings.EqualFold(resp.Header.Get("Upgrade"), r.Header.Get("Upgrade")) {
		back.Close()
		st.status = http.StatusBadGateway
		p.log.Warn("server switched to a protocol that was not asked for", "group", st.group.Name, "server", s.Name)
		writeError(w, http.StatusBadGateway)
		return
	}
	client, crw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		writeError(w, http.StatusInternalServerError)
		return
	}
	resp.Header.Del("Keep-Alive")
	resp.Header.Del("Transfer-Encoding")
	if st.group.Cfg.ExposeServer {
		resp.Header.Set("X-Tandem-Server", s.Name)
	}
	fmt.Fprintf(crw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	resp.Header.Write(crw)
	crw.WriteString("\r\n")
	err = crw.Flush()
	bufpool.PutWriter(crw.Writer) // the relay writes frames to the sockets
	if err != nil {
		client.Close()
		back.Close()
		return
	}
	ws := newSession(client, crw.Reader, back, br)
	p.wsWait.Add(1)
	removeAll := p.upgraded.Add(ws)
	removeServer := func() {}
	if !pinned {
		// Only connections that follow the active role are closed on a switch.
		removeServer = s.Conns().Add(ws)
	}
	// The session outlives this handler: its goroutine (and stack) goes,
	// and the pumps park while there is nothing to relay. Counted and
	// logged when it ends: a websocket's duration is its session.
	st.recorded = true
	// What the access log needs of the request, not the request and all it
	// holds for the session's length.
	logged := &http.Request{Method: r.Method, Host: r.Host, URL: &url.URL{Path: r.URL.Path}, RemoteAddr: r.RemoteAddr}
	ws.onEnd = func() {
		removeServer()
		removeAll()
		p.record(logged, st, true)
		p.wsWait.Done()
	}
	ws.start()
}

// wsSession is one proxied websocket: a pump each way. Frames are copied
// whole, so that a close frame of the gateway's own can be written
// between two frames.
type wsSession struct {
	client, back     net.Conn
	toClient, toBack pump

	closing    atomic.Bool
	backClosed atomic.Bool // the server sent a close frame
	// clientEnded: the client's side ended first: nothing to tell it.
	clientEnded atomic.Bool
	live        atomic.Int32 // pumps not ended
	onEnd       func()

	// mu orders parking against waking: once noPark is set (the session
	// is closing, or a read deadline is to be seen), no pump parks again.
	mu     sync.Mutex
	noPark bool
}

func newSession(client net.Conn, clientR *bufio.Reader, back net.Conn, backR *bufio.Reader) *wsSession {
	ws := &wsSession{client: client, back: back, onEnd: func() {}}
	ws.toClient = pump{ws: ws, src: back, br: backR, dst: client, lock: newFrameLock(), closing: &ws.closing, sentClose: &ws.backClosed}
	ws.toBack = pump{ws: ws, src: client, br: clientR, dst: back, lock: newFrameLock(), closing: &ws.closing}
	return ws
}

// start runs both pumps; each parks as soon as it has nothing to relay.
func (ws *wsSession) start() {
	ws.live.Store(2)
	go ws.toClient.run()
	go ws.toBack.run()
}

// pump copies the frames of one direction, from src to dst. While src has
// nothing to read it is parked: no goroutine, no buffer (buffers come
// from bufpool while it runs: the client's is the one the fast path read
// the handshake with). Over TLS too: see tlsIdle.
type pump struct {
	ws   *wsSession
	src  net.Conn
	dst  io.Writer
	br   *bufio.Reader // nil while parked
	lock frameLock     // held while a frame is written to dst
	// closing is the session's; sentClose, if set, is set when a close
	// frame passes.
	closing, sentClose *atomic.Bool
	rc                 syscall.RawConn // src's socket, for the parker
	parked             bool            // under ws.mu
	// probing: tlsIdle reads src with a read deadline in the past;
	// readDL is the read deadline the session wants of src, set again
	// when the probe ends (both under ws.mu).
	probing bool
	readDL  time.Time
}

// errParked ends a pump's goroutine without ending the pump.
var errParked = errors.New("parked")

func (p *pump) run() {
	if p.br == nil {
		p.br = bufpool.Reader(p.src)
	}
	err := p.copy()
	if errors.Is(err, errParked) {
		return
	}
	p.ws.ended(p)
}

// copy relays frames until src fails or the pump parks.
func (p *pump) copy() error {
	for {
		if p.br.Buffered() == 0 && p.park() {
			return errParked
		}
		if err := p.frame(); err != nil {
			return err
		}
	}
}

// park parks the pump if src has nothing to read, and reports whether it
// did. What was read is relayed first: only an empty buffer is given up.
func (p *pump) park() bool {
	k := getParker()
	if k == nil {
		return false
	}
	rc, tc := socketOf(p.src)
	if rc == nil || tc != nil && !p.tlsIdle(tc) {
		return false
	}
	ws := p.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.noPark || !wouldBlock(rc) {
		return false
	}
	p.rc = rc
	// Set before the socket is armed: an event at once waits for ws.mu,
	// and resumes the pump only after this goroutine let it go.
	p.parked = true
	if err := k.park(p); err != nil {
		p.parked = false
		return false
	}
	bufpool.PutReader(p.br)
	p.br = nil
	return true
}

// tlsIdle reports whether reading tc would wait on its socket: tc holds
// no plaintext, no whole record, no end or error to report; what it did
// hold is in p.br. It reads tc with a read deadline in the past, under
// which the socket is not read at all and crypto/tls returns what it
// holds or else the timeout, which it does not keep (a timeout is a
// temporary net.Error: only others are kept as the connection's error).
// A record cut short stays in tc, to be completed by the bytes that
// wake the pump. A read deadline the session sets meanwhile is set when
// the probe ends, not lost under the probe's.
func (p *pump) tlsIdle(tc *tls.Conn) bool {
	ws := p.ws
	ws.mu.Lock()
	if ws.noPark {
		ws.mu.Unlock()
		return false
	}
	p.probing = true
	tc.SetReadDeadline(aLongTimeAgo)
	ws.mu.Unlock()
	// Read src itself (p.br holds nothing): not through the reader
	// net/http hijacked with, which takes a timeout for a client gone.
	p.br.Reset(p.src)
	_, err := p.br.Peek(1)
	ws.mu.Lock()
	p.probing = false
	tc.SetReadDeadline(p.readDL)
	ws.mu.Unlock()
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// setReadDeadline sets the read deadline of p's source, at once or, while
// tlsIdle probes, when it ends.
func (p *pump) setReadDeadline(t time.Time) {
	p.ws.mu.Lock()
	defer p.ws.mu.Unlock()
	p.readDL = t
	if !p.probing {
		p.src.SetReadDeadline(t)
	}
}

// resume runs a parked pump again (its socket is readable, or the session
// needs it running). At most one caller wins.
func (p *pump) resume() {
	p.ws.mu.Lock()
	was := p.parked
	p.parked = false
	p.ws.mu.Unlock()
	if was {
		go p.run()
	}
}

// unpark stops both pumps from parking and wakes those parked: before a
// socket is closed (a parked one must leave the epoll set first) and
// before a read deadline is set (only a running pump sees it).
func (ws *wsSession) unpark() {
	ws.mu.Lock()
	ws.noPark = true
	var wake []*pump
	for _, p := range []*pump{&ws.toClient, &ws.toBack} {
		if p.parked {
			getParker().unpark(p)
			p.parked = false
			wake = append(wake, p)
		}
	}
	ws.mu.Unlock()
	for _, p := range wake {
		go p.run()
	}
}

// ended is a pump's end. When the client's side ends, so does the
// session. When the server's side ends after its close frame the client
// gets a moment to answer it; without one (killed, reset), the client is
// told to reconnect at once rather than left to guess from an abrupt close.
func (ws *wsSession) ended(p *pump) {
	if p.br != nil {
		bufpool.PutReader(p.br)
		p.br = nil
	}
	if p == &ws.toBack {
		ws.clientEnded.Store(true)
		ws.unpark()
		ws.client.Close()
		ws.back.Close()
	} else {
		switch {
		case ws.clientEnded.Load():
		case ws.backClosed.Load():
			ws.unpark()
			ws.toBack.setReadDeadline(time.Now().Add(time.Second))
		default:
			ws.CloseWith(CloseServiceRestart, "server connection lost")
		}
	}
	if ws.live.Add(-1) == 0 {
		ws.onEnd()
	}
}

// socketOf returns the socket under c when reading c reads that socket
// and nothing else (not while bytes read before are to be read again),
// or reads it through one TLS connection, tc: then c has nothing to read
// only if tc holds nothing either (decrypted bytes or records the socket
// no longer shows), which tlsIdle asks.
func socketOf(c net.Conn) (rc syscall.RawConn, tc *tls.Conn) {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			if tc != nil {
				return nil, nil
			}
			tc, c = x, x.NetConn()
		case interface {
			Buffered() int
			NetConn() net.Conn
		}:
			if x.Buffered() > 0 {
				return nil, nil
			}
			c = x.NetConn()
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil, nil
			}
			return rc, tc
		default:
			return nil, nil
		}
	}
}

// frameLock is a mutex that can be given up on after a while.
type frameLock chan struct{}

func newFrameLock() frameLock { return make(frameLock, 1) }

func (l frameLock) lock(timeout time.Duration) bool {
	if timeout <= 0 {
		l <- struct{}{}
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (l frameLock) unlock() { <-l }

// CloseWith sends the client a close frame with code, tells the server the
// gateway is going away, and ends the session. It returns at once.
func (ws *wsSession) CloseWith(code uint16, reason string) {
	if !ws.closing.CompareAndSwap(false, true) {
		return
	}
	ws.unpark()
	const grace = 500 * time.Millisecond
	if ws.toClient.lock.lock(grace) {
		ws.client.SetWriteDeadline(time.Now().Add(grace))
		_, _ = ws.client.Write(closeFrame(code, reason, false))
		ws.toClient.lock.unlock()
	}
	if ws.toBack.lock.lock(grace) {
		ws.back.SetWriteDeadline(time.Now().Add(grace))
		_, _ = ws.back.Write(closeFrame(CloseGoingAway, "", true))
		ws.toBack.lock.unlock()
	}
	// Stop reading from the server; wait a little for the client's answer.
	ws.back.Close()
	ws.toBack.setReadDeadline(time.Now().Add(time.Second))
}

// closeFrame builds a close frame; frames from a client must be masked.
func closeFrame(code uint16, reason string, masked bool) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	payload := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(payload, code)
	copy(payload[2:], reason)
	f := []byte{0x88, byte(len(payload))}
	if masked {
		key := [4]byte{0x5a, 0x3c, 0x96, 0xe1}
		f[1] |= 0x80
		f = append(f, key[:]...)
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return append(f, payload...)
}

// frame copies one whole frame under the lock of dst. After the session
// began closing, frames are dropped and a close frame from the peer ends
// the copy.
func (p *pump) frame() error {
	src, closing := p.br, p.closing
	var hdr [14]byte
	if _, err := io.ReadFull(src, hdr[:2]); err != nil {
		return err
	}
	n := 2
	length := uint64(hdr[1] & 0x7f)
	switch length {
	case 126:
		if _, err := io.ReadFull(src, hdr[2:4]); err != nil {
			return err
		}
		length, n = uint64(binary.BigEndian.Uint16(hdr[2:4])), 4
	case 127:
		if _, err := io.ReadFull(src, hdr[2:10]); err != nil {
			return err
		}
		length, n = binary.BigEndian.Uint64(hdr[2:10]), 10
	}
	if hdr[1]&0x80 != 0 {
		if _, err := io.ReadFull(src, hdr[n:n+4]); err != nil {
			return err
		}
		n += 4
	}
	if length > 1<<40 {
		return errors.New("websocket frame too large")
	}
	// Closing is checked under the lock that CloseWith writes its close
	// frame under: checked before, a frame could follow the gateway's own
	// close frame (a protocol error for the peer).
	p.lock.lock(0)
	if closing.Load() {
		p.lock.unlock()
		if _, err := src.Discard(int(length)); err != nil {
			return err
		}
		if hdr[0]&0x0f == 0x8 {
			return io.EOF
		}
		return nil
	}
	if hdr[0]&0x0f == 0x8 && p.sentClose != nil {
		p.sentClose.Store(true)
	}
	_, err := p.dst.Write(hdr[:n])
	if err == nil {
		err = copyBuffered(p.dst, src, int64(length))
	}
	p.lock.unlock()
	return err
}

// copyBuffered copies n bytes from src to dst through src's own buffer,
// allocating nothing.
func copyBuffered(dst io.Writer, src *bufio.Reader, n int64) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				return err
			}
		}
		b, _ := src.Peek(int(min(int64(src.Buffered()), n)))
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}
