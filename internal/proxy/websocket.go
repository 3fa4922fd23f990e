package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/route"
)

// Websocket close codes (RFC 6455 and IANA registry).
const (
	CloseGoingAway      uint16 = 1001
	CloseServiceRestart uint16 = 1012
)

// hopHeaders are connection-specific and never forwarded as is.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// isUpgrade reports whether the request asks to switch protocols.
func isUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && h.Get("Upgrade") != ""
}

// IsWebsocketHandshake reports whether r is a websocket opening handshake:
// a GET with Connection: upgrade and Upgrade: websocket. The guard answers
// 403 to anything else on a websocket path.
func IsWebsocketHandshake(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 && r.ProtoMinor >= 1 &&
		headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// serveUpgrade proxies a protocol upgrade itself rather than through
// the plain request path, so that it owns both connections: it can track them per
// server and close them with a websocket close frame on a switch.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request, st *reqState) {
	g := st.group
	var lastErr error
	repicks := 0
	for try := 0; try < g.Cfg.Retry.Attempts; try++ {
		choice, err := g.Pick(r.Context(), st.host, st.cookie, st.tried)
		if err != nil {
			break
		}
		s := choice.Server
		st.tried, st.server = append(st.tried, s), s
		if try > 0 {
			st.retries++
		}
		backConn, br, resp, err := p.handshake(r, st, choice)
		if err != nil {
			lastErr = err
			if r.Context().Err() != nil {
				st.status = 499
				return
			}
			if backend.LocalError(err) {
				// The gateway's own shortage: no server's fault.
				lastErr = fmt.Errorf("%w: %w", errLocal, err)
				break
			}
			if errors.Is(err, errRepick) && repicks < maxRepicks {
				// Nothing was sent: not a try of s.
				repicks++
				st.tried = st.tried[:len(st.tried)-1]
				try--
				continue
			}
			if errors.Is(err, errAbandoned) || errors.Is(err, errRepick) {
				// The server went down or lost the role meanwhile: not a
				// failure of its own; the next try goes to the one active now.
				continue
			}
			if isDialError(err) {
				s.Eject("passive: "+reason(err), dialEjection(g.Cfg.Passive, g.Cfg.Health, s))
			} else {
				s.Failure("passive: websocket handshake: "+reason(err), g.Cfg.Passive.MaxFails, g.Cfg.Passive.Window.D(), failureEjection(g, s, err))
				s.Kick()
			}
			// The handshake is a GET with no body: safe to send again.
			continue
		}
		st.status, st.answered = resp.StatusCode, true
		if resp.StatusCode != http.StatusSwitchingProtocols {
			p.relayResponse(w, resp, st)
			backConn.Close()
			return
		}
		p.relayUpgrade(w, r, st, s, choice.Pinned, backConn, br, resp)
		return
	}
	p.fail(w, r, st, noServer(lastErr))
}

// handshake dials s and sends the upgrade request, returning the server's answer.
func (p *Proxy) handshake(r *http.Request, st *reqState, choice route.Choice) (net.Conn, *bufio.Reader, *http.Response, error) {
	g, s := st.group, choice.Server
	gen := s.RoleGen()
	if moved(g, choice) {
		return nil, nil, nil, errRepick
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.Cfg.Timeouts.Connect.D())
	defer cancel()
	c, err := p.dialer.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return nil, nil, nil, &dialError{err: err}
	}
	wait := g.Cfg.Timeouts.Response.D()
	if pt := g.Cfg.Retry.PerTryTimeout.D(); pt > 0 {
		wait = pt
	}
	c.SetDeadline(time.Now().Add(wait))
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", s.Address
	upgrade := r.Header.Get("Upgrade")
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	for _, h := range r.Header.Values("Connection") {
		for _, t := range strings.Split(h, ",") {
			out.Header.Del(strings.TrimSpace(t))
		}
	}
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upgrade)
	setForwarded(out, r, st.table.Trusted)
	out.Header.Del("X-Tandem-Epoch") // the gateway's word only, never a client's
	out.Header.Del("X-Tandem-Role")
	if choice.HasEpoch {
		out.Header.Set("X-Tandem-Epoch", strconv.FormatUint(choice.Epoch, 10))
	}
	if err := out.Write(c); err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReader(c)
	w := s.Wait(gen, choice.Pinned, g.Cfg.Passive.NoProgressAfter(), p.onStall, func() { c.SetDeadline(aLongTimeAgo) })
	resp, err := http.ReadResponse(br, out)
	s.Done(w, err == nil)
	if err != nil {
		c.Close()
		if w.Abandoned() {
			return nil, nil, nil, fmt.Errorf("%w: %w", errAbandoned, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w", errTimeout, err)
		}
		return nil, nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return c, br, resp, nil
}

// relayResponse passes on a server's refusal to upgrade.
func (p *Proxy) relayResponse(w http.ResponseWriter, resp *http.Response, st *reqState) {
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if st.group.Cfg.ExposeServer {
		w.Header().Set("X-Tandem-Server", st.server.Name)
	}
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
	if err := crw.Flush(); err != nil {
		client.Close()
		back.Close()
		return
	}
	ws := &wsSession{client: client, clientR: crw.Reader, back: back, backR: br,
		toClient: newFrameLock(), toBack: newFrameLock()}
	p.wsWait.Add(1)
	defer p.wsWait.Done()
	defer p.upgraded.Add(ws)()
	if !pinned {
		// Only connections that follow the active role are closed on a switch.
		defer s.Conns().Add(ws)()
	}
	ws.run()
}

// wsSession is one proxied websocket. Frames are copied whole, so that a
// close frame of the gateway's own can be written between two frames.
type wsSession struct {
	client  net.Conn
	clientR *bufio.Reader
	back    net.Conn
	backR   *bufio.Reader

	toClient, toBack frameLock
	closing          atomic.Bool
	backClosed       atomic.Bool // the server sent a close frame
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

func (ws *wsSession) run() {
	// Frames from the server are copied in a goroutine of their own, those
	// from the client in the handler's: two goroutines a websocket, not
	// three (an idle websocket costs little more than their stacks).
	var ended atomic.Bool // the client's side ended first: nothing to tell it
	fromBack := make(chan struct{})
	go func() {
		defer close(fromBack)
		copyFrames(ws.client, ws.backR, ws.toClient, &ws.closing, &ws.backClosed)
		switch {
		case ended.Load():
		case ws.backClosed.Load():
			// Closing handshake from the server: give the client a moment
			// to answer it before the socket goes.
			ws.client.SetReadDeadline(time.Now().Add(time.Second))
		default:
			// The server's connection died without a close handshake
			// (killed, reset): tell the client to reconnect at once rather
			// than leave it to guess from an abrupt close.
			ws.CloseWith(CloseServiceRestart, "server connection lost")
		}
	}()
	// Ends when the client goes, or by the read deadline the other side
	// or CloseWith set.
	copyFrames(ws.back, ws.clientR, ws.toBack, &ws.closing, nil)
	ended.Store(true)
	ws.client.Close()
	ws.back.Close()
	<-fromBack
}

// CloseWith sends the client a close frame with code, tells the server the
// gateway is going away, and ends the session. It returns at once.
func (ws *wsSession) CloseWith(code uint16, reason string) {
	if !ws.closing.CompareAndSwap(false, true) {
		return
	}
	const grace = 500 * time.Millisecond
	if ws.toClient.lock(grace) {
		ws.client.SetWriteDeadline(time.Now().Add(grace))
		_, _ = ws.client.Write(closeFrame(code, reason, false))
		ws.toClient.unlock()
	}
	if ws.toBack.lock(grace) {
		ws.back.SetWriteDeadline(time.Now().Add(grace))
		_, _ = ws.back.Write(closeFrame(CloseGoingAway, "", true))
		ws.toBack.unlock()
	}
	// Stop reading from the server; wait a little for the client's answer.
	ws.back.Close()
	ws.client.SetReadDeadline(time.Now().Add(time.Second))
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

// copyFrames copies websocket frames from src to dst, one whole frame under
// lock at a time. After the session began closing, frames are dropped and a
// close frame from the peer ends the copy.
func copyFrames(dst io.Writer, src *bufio.Reader, lock frameLock, closing, sentClose *atomic.Bool) error {
	var hdr [14]byte
	for {
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
		if closing.Load() {
			if _, err := io.CopyN(io.Discard, src, int64(length)); err != nil {
				return err
			}
			if hdr[0]&0x0f == 0x8 {
				return io.EOF
			}
			continue
		}
		if hdr[0]&0x0f == 0x8 && sentClose != nil {
			sentClose.Store(true)
		}
		lock.lock(0)
		_, err := dst.Write(hdr[:n])
		if err == nil {
			_, err = io.CopyN(dst, src, int64(length))
		}
		lock.unlock()
		if err != nil {
			return err
		}
	}
}
