package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestIsWebsocketHandshake(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		major       int
		conn        []string // Connection header lines
		upgrade     []string // Upgrade header lines
		wantWS      bool     // IsWebsocketHandshake
		wantUpgrade bool     // isUpgrade
	}{
		{name: "plain handshake", conn: []string{"Upgrade"}, upgrade: []string{"websocket"}, wantWS: true, wantUpgrade: true},
		{name: "lower case tokens", conn: []string{"upgrade"}, upgrade: []string{"websocket"}, wantWS: true, wantUpgrade: true},
		{name: "mixed case tokens", conn: []string{"UpGrAdE"}, upgrade: []string{"WebSocket"}, wantWS: true, wantUpgrade: true},
		{name: "upper case tokens", conn: []string{"UPGRADE"}, upgrade: []string{"WEBSOCKET"}, wantWS: true, wantUpgrade: true},
		{name: "keep-alive, Upgrade", conn: []string{"keep-alive, Upgrade"}, upgrade: []string{"websocket"}, wantWS: true, wantUpgrade: true},
		{name: "Upgrade, keep-alive without spaces", conn: []string{"Upgrade,keep-alive"}, upgrade: []string{"websocket"}, wantWS: true, wantUpgrade: true},
		{name: "padded token", conn: []string{"  keep-alive ,  Upgrade  "}, upgrade: []string{" websocket "}, wantWS: true, wantUpgrade: true},
		{name: "token on a second Connection line", conn: []string{"keep-alive", "Upgrade"}, upgrade: []string{"websocket"}, wantWS: true, wantUpgrade: true},
		{name: "websocket among upgrade tokens", conn: []string{"Upgrade"}, upgrade: []string{"h2c, websocket"}, wantWS: true, wantUpgrade: true},
		{name: "missing Upgrade header", conn: []string{"Upgrade"}, wantWS: false, wantUpgrade: false},
		{name: "empty Upgrade header", conn: []string{"Upgrade"}, upgrade: []string{""}, wantWS: false, wantUpgrade: false},
		{name: "missing Connection header", upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: false},
		{name: "Connection without upgrade", conn: []string{"keep-alive"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: false},
		{name: "Connection close", conn: []string{"close"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: false},
		{name: "upgrade as a substring only", conn: []string{"upgraded, no-upgrade"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: false},
		{name: "upgrade with parameters is not the token", conn: []string{"upgrade=1"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: false},
		{name: "other protocol", conn: []string{"Upgrade"}, upgrade: []string{"h2c"}, wantWS: false, wantUpgrade: true},
		{name: "websocket as a substring only", conn: []string{"Upgrade"}, upgrade: []string{"websockets"}, wantWS: false, wantUpgrade: true},
		{name: "POST", method: http.MethodPost, conn: []string{"Upgrade"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: true},
		{name: "HEAD", method: http.MethodHead, conn: []string{"Upgrade"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: true},
		{name: "lower case get", method: "get", conn: []string{"Upgrade"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: true},
		{name: "HTTP/2", major: 2, conn: []string{"Upgrade"}, upgrade: []string{"websocket"}, wantWS: false, wantUpgrade: true},
		{name: "HTTP/2 CONNECT", method: http.MethodConnect, major: 2, wantWS: false, wantUpgrade: false},
		{name: "no headers", wantWS: false, wantUpgrade: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Method: tt.method, ProtoMajor: tt.major, ProtoMinor: 1, Header: http.Header{}}
			if r.Method == "" {
				r.Method = http.MethodGet
			}
			if r.ProtoMajor == 0 {
				r.ProtoMajor = 1
			}
			if r.ProtoMajor == 2 {
				r.ProtoMinor = 0
			}
			for _, v := range tt.conn {
				r.Header.Add("Connection", v)
			}
			for _, v := range tt.upgrade {
				r.Header.Add("Upgrade", v)
			}
			if got := IsWebsocketHandshake(r); got != tt.wantWS {
				t.Errorf("IsWebsocketHandshake = %v, want %v", got, tt.wantWS)
			}
			if got := isUpgrade(r.Header); got != tt.wantUpgrade {
				t.Errorf("isUpgrade = %v, want %v", got, tt.wantUpgrade)
			}
		})
	}
}

// TestIsWebsocketHandshakeParsed runs the guard on requests as the server
// parses them off the wire.
func TestIsWebsocketHandshakeParsed(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want bool
	}{
		{name: "browser handshake", want: true, raw: "GET /websocket HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n" +
			"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"},
		{name: "lower case header names", want: true, raw: "GET /websocket HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"},
		{name: "plain GET", want: false, raw: "GET /websocket HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "Upgrade without Connection", want: false, raw: "GET /websocket HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"},
		{name: "POST", want: false, raw: "POST /websocket HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.raw)))
			if err != nil {
				t.Fatal(err)
			}
			if got := IsWebsocketHandshake(r); got != tt.want {
				t.Errorf("IsWebsocketHandshake = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzWebsocketGuard(f *testing.F) {
	f.Add("GET", 1, "Upgrade", "", "websocket")
	f.Add("GET", 1, "keep-alive", "Upgrade", "WebSocket")
	f.Add("GET", 1, "keep-alive", "", "websocket")
	f.Add("POST", 1, "upgrade", "", "websocket")
	f.Add("GET", 2, "Upgrade", "", "websocket")
	f.Add("GET", 1, "upgraded", "xupgrade", "websocket, h2c")
	f.Add("GET", 1, "\x00upgrade", "up grade", "web socket")
	f.Fuzz(func(t *testing.T, method string, major int, conn1, conn2, upgrade string) {
		r := &http.Request{Method: method, ProtoMajor: major, Header: http.Header{}}
		for _, v := range []string{conn1, conn2} {
			if v != "" {
				r.Header.Add("Connection", v)
			}
		}
		if upgrade != "" {
			r.Header.Set("Upgrade", upgrade)
		}
		ws := IsWebsocketHandshake(r)
		up := isUpgrade(r.Header)
		conn := strings.ToLower(conn1 + "," + conn2)
		if !strings.Contains(conn, "upgrade") {
			if ws {
				t.Errorf("accepted a handshake whose Connection %q lacks upgrade", []string{conn1, conn2})
			}
			if up {
				t.Errorf("isUpgrade with Connection %q", []string{conn1, conn2})
			}
		}
		if ws {
			if method != http.MethodGet || major != 1 {
				t.Errorf("accepted %s over HTTP/%d", method, major)
			}
			if !strings.Contains(strings.ToLower(upgrade), "websocket") {
				t.Errorf("accepted Upgrade %q", upgrade)
			}
			if !up {
				t.Errorf("a websocket handshake is not an upgrade")
			}
		}
	})
}

// decodeClose parses a close frame built by closeFrame.
func decodeClose(t *testing.T, f []byte) (code uint16, reason string, masked bool) {
	t.Helper()
	if len(f) < 2 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	if f[0] != 0x88 {
		t.Fatalf("first byte %#x, want FIN and opcode close (0x88)", f[0])
	}
	masked = f[1]&0x80 != 0
	n := int(f[1] & 0x7f)
	if n > 125 {
		t.Fatalf("control frame payload of %d bytes (max 125)", n)
	}
	rest := f[2:]
	var key []byte
	if masked {
		key, rest = rest[:4], rest[4:]
	}
	if len(rest) != n {
		t.Fatalf("payload %d bytes, header says %d", len(rest), n)
	}
	p := bytes.Clone(rest)
	for i := range p {
		if masked {
			p[i] ^= key[i%4]
		}
	}
	if n < 2 {
		t.Fatalf("close payload without a code")
	}
	return binary.BigEndian.Uint16(p), string(p[2:]), masked
}

func TestCloseFrame(t *testing.T) {
	long := strings.Repeat("r", 200)
	tests := []struct {
		name       string
		code       uint16
		reason     string
		masked     bool
		wantReason string
	}{
		{name: "service restart", code: CloseServiceRestart, reason: "active server changed", wantReason: "active server changed"},
		{name: "service restart masked", code: CloseServiceRestart, reason: "active server changed", masked: true, wantReason: "active server changed"},
		{name: "going away no reason", code: CloseGoingAway},
		{name: "going away masked no reason", code: CloseGoingAway, masked: true},
		{name: "normal closure", code: 1000, reason: "bye", wantReason: "bye"},
		{name: "high code", code: 4999, reason: "x", masked: true, wantReason: "x"},
		{name: "mask key bytes in code", code: 0x5a3c, reason: "\x96\xe1", masked: true, wantReason: "\x96\xe1"},
		{name: "reason of 123 bytes", code: 1012, reason: long[:123], wantReason: long[:123]},
		{name: "long reason is cut to fit", code: 1012, reason: long, wantReason: long[:123]},
		{name: "long reason masked", code: 1012, reason: long, masked: true, wantReason: long[:123]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := closeFrame(tt.code, tt.reason, tt.masked)
			code, reason, masked := decodeClose(t, f)
			if code != tt.code || reason != tt.wantReason || masked != tt.masked {
				t.Errorf("decoded %d %q masked=%v, want %d %q masked=%v", code, reason, masked, tt.code, tt.wantReason, tt.masked)
			}
			if tt.masked && len(tt.reason) >= 3 && bytes.Contains(f[6:], []byte(tt.wantReason)) {
				t.Errorf("masked frame carries the reason in clear")
			}
		})
	}
}

// frame builds one websocket frame with the shortest length encoding.
func frame(opcode byte, payload []byte, masked bool) []byte {
	f := []byte{0x80 | opcode}
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		f = append(f, mask|byte(n))
	case n <= 0xffff:
		f = append(f, mask|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, mask|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if masked {
		key := []byte{1, 2, 3, 4}
		f = append(f, key...)
		for i, b := range payload {
			f = append(f, b^key[i%4])
		}
		return f
	}
	return append(f, payload...)
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCopyFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tests []struct {
		name string
		src  []byte
	}
	add := func(name string, src []byte) {
		tests = append(tests, struct {
			name string
			src  []byte
		}{name, src})
	}
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, masked := range []bool{false, true} {
			name := "unmasked"
			if masked {
				name = "masked"
			}
			add(name+"/"+itoa(n), frame(0x2, randomBytes(rng, n), masked))
		}
	}
	// Several frames in a row, control frames between fragments.
	var seq []byte
	seq = append(seq, 0x01, 0x03, 'a', 'b', 'c') // text, not final
	seq = append(seq, frame(0x9, []byte("ping"), true)...)
	seq = append(seq, frame(0x0, randomBytes(rng, 300), true)...)
	seq = append(seq, frame(0xa, nil, false)...)
	seq = append(seq, frame(0x2, randomBytes(rng, 65536), false)...)
	seq = append(seq, frame(0x8, []byte{0x03, 0xe8}, true)...)
	add("sequence", seq)
	// A length written longer than needed is still copied as is.
	nonMinimal := []byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'}
	add("non-minimal 64-bit length", nonMinimal)
	add("non-minimal 16-bit length", []byte{0x82, 126, 0, 2, 'x', 'y'})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst bytes.Buffer
			var closing, sentClose atomic.Bool
			err := copyFrames(&dst, bufio.NewReader(bytes.NewReader(tt.src)), newFrameLock(), &closing, &sentClose)
			if err != io.EOF {
				t.Errorf("copyFrames = %v, want io.EOF at the end of the stream", err)
			}
			if !bytes.Equal(dst.Bytes(), tt.src) {
				t.Errorf("copied %d bytes, want the %d bytes of the source unchanged", dst.Len(), len(tt.src))
			}
			if wantClose := tt.name == "sequence"; sentClose.Load() != wantClose {
				t.Errorf("sentClose = %v, want %v", sentClose.Load(), wantClose)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestCopyFramesErrors(t *testing.T) {
	huge := func(n uint64, masked bool) []byte {
		f := []byte{0x82, 127}
		if masked {
			f[1] |= 0x80
		}
		f = binary.BigEndian.AppendUint64(f, n)
		if masked {
			f = append(f, 1, 2, 3, 4)
		}
		return f
	}
	tests := []struct {
		name string
		src  []byte
		// wantErr, when set, is the error wanted; otherwise any error but io.EOF.
		wantErr error
		// copied is how many bytes of src reach dst.
		copied int
	}{
		{name: "length just over 1<<40", src: huge(1<<40+1, false)},
		{name: "length over 1<<40 masked", src: huge(1<<40+1, true)},
		{name: "length with the top bit set", src: huge(1<<63, false)},
		{name: "largest length", src: huge(^uint64(0), true)},
		{name: "truncated first byte pair", src: []byte{0x82}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated 16-bit length", src: []byte{0x82, 126, 1}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated 64-bit length", src: []byte{0x82, 127, 0, 0, 0}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated mask key", src: []byte{0x82, 0x85, 1, 2}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated payload", src: []byte{0x82, 10, 'a', 'b'}, wantErr: io.EOF, copied: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst bytes.Buffer
			var closing atomic.Bool
			err := copyFrames(&dst, bufio.NewReader(bytes.NewReader(tt.src)), newFrameLock(), &closing, nil)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("copyFrames = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && (err == nil || err == io.EOF):
				t.Errorf("copyFrames = %v, want an error", err)
			}
			if dst.Len() != tt.copied {
				t.Errorf("%d bytes reached dst, want %d", dst.Len(), tt.copied)
			}
		})
	}
}

// TestCopyFramesTooLargeFollowedByData checks that a refused frame stops the
// copy: what follows it is not taken for a frame.
func TestCopyFramesTooLargeFollowedByData(t *testing.T) {
	src := []byte{0x82, 127}
	src = binary.BigEndian.AppendUint64(src, 1<<41)
	src = append(src, frame(0x2, []byte("next"), false)...)
	var dst bytes.Buffer
	var closing atomic.Bool
	if err := copyFrames(&dst, bufio.NewReader(bytes.NewReader(src)), newFrameLock(), &closing, nil); err == nil || err == io.EOF {
		t.Fatalf("copyFrames = %v, want an error", err)
	}
	if dst.Len() != 0 {
		t.Errorf("%d bytes copied after a refused frame", dst.Len())
	}
}

func TestCopyFramesWhileClosing(t *testing.T) {
	tests := []struct {
		name    string
		src     []byte
		wantErr error
	}{
		{name: "data frames are dropped until the close frame",
			src: append(append(frame(0x2, bytes.Repeat([]byte{7}, 70000), true), frame(0x1, []byte("hi"), true)...),
				append(frame(0x8, []byte{0x03, 0xe8}, true), frame(0x2, []byte("after"), true)...)...), wantErr: io.EOF},
		{name: "stream ends without a close frame", src: frame(0x2, []byte("data"), false), wantErr: io.EOF},
		{name: "truncated while dropping", src: []byte{0x82, 10, 'a'}, wantErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst bytes.Buffer
			var closing, sentClose atomic.Bool
			closing.Store(true)
			br := bufio.NewReader(bytes.NewReader(tt.src))
			err := copyFrames(&dst, br, newFrameLock(), &closing, &sentClose)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("copyFrames = %v, want %v", err, tt.wantErr)
			}
			if dst.Len() != 0 {
				t.Errorf("%d bytes copied while closing", dst.Len())
			}
			if sentClose.Load() {
				t.Errorf("sentClose set by a frame that was dropped")
			}
		})
	}
	// The copy stops at the close frame: what follows stays unread.
	src := append(frame(0x8, nil, false), frame(0x2, []byte("after"), false)...)
	br := bufio.NewReader(bytes.NewReader(src))
	var closing atomic.Bool
	closing.Store(true)
	if err := copyFrames(io.Discard, br, newFrameLock(), &closing, nil); err != io.EOF {
		t.Fatalf("copyFrames = %v, want io.EOF", err)
	}
	if rest, _ := io.ReadAll(br); !bytes.Equal(rest, frame(0x2, []byte("after"), false)) {
		t.Errorf("left %q unread, want the frame after the close", rest)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("write failed") }

func TestCopyFramesWriteError(t *testing.T) {
	var closing atomic.Bool
	lock := newFrameLock()
	err := copyFrames(failWriter{}, bufio.NewReader(bytes.NewReader(frame(0x2, []byte("x"), false))), lock, &closing, nil)
	if err == nil || err.Error() != "write failed" {
		t.Fatalf("copyFrames = %v, want the write error", err)
	}
	// The lock was given back.
	if !lock.lock(0) {
		t.Fatal("lock not available")
	}
}
