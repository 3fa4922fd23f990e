package sockwait

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/testcert"
)

// wrapped is a net.Conn wrapping a TCP connection that reaches its socket
// (as the gateway's connection-limit wrapping does).
type wrapped struct{ net.Conn }

func (w wrapped) SyscallConn() (syscall.RawConn, error) { return w.Conn.(syscall.Conn).SyscallConn() }
func (w wrapped) CloseWrite() error                     { return w.Conn.(*net.TCPConn).CloseWrite() }

func rawIOOf(t *testing.T, c net.Conn) *rawIO {
	t.Helper()
	r, ok := IO(c).(*rawIO)
	if !ok {
		t.Fatalf("IO(%T) is %T: want the raw socket", c, IO(c))
	}
	return r
}

// TestIOBytes: what goes through the raw reads and writes arrives whole and
// in order, both ways at once: 8 MiB each way (many times a socket's
// buffer, so writes wait for room and reads for data), through bufio as h1
// and upstream use it, on a wrapped connection too.
func TestIOBytes(t *testing.T) {
	near, far := pair(t)
	a, b := rawIOOf(t, wrapped{near}), rawIOOf(t, far)
	// Bytes lost or a wait never woken fail the test instead of hanging it.
	near.SetDeadline(time.Now().Add(20 * time.Second))
	far.SetDeadline(time.Now().Add(20 * time.Second))
	const size = 8 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	errs := make(chan error, 4)
	copyTo := func(w io.Writer) {
		bw := bufio.NewWriterSize(w, 4096)
		// Small and large writes: through the buffer, and past it.
		for off, step := 0, 1; off < size; step = step*7%300000 + 1 {
			end := min(off+step, size)
			if _, err := bw.Write(payload[off:end]); err != nil {
				errs <- err
				return
			}
			off = end
		}
		errs <- bw.Flush()
	}
	readAll := func(r io.Reader) {
		got, err := io.ReadAll(io.LimitReader(bufio.NewReaderSize(r, 4096), size))
		if err == nil && !bytes.Equal(got, payload) {
			err = errors.New("the bytes read differ from those written")
		}
		errs <- err
	}
	go copyTo(a)
	go copyTo(b)
	go readAll(a)
	go readAll(b)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	near.(*net.TCPConn).CloseWrite()
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("after the peer's FIN: %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := b.Read(nil); n != 0 || err != nil {
		t.Errorf("an empty read: %d, %v", n, err)
	}
}

// TestIOErrors: deadlines, a reset and a close fail the raw reads and
// writes as they fail net.Conn's own, so callers' tests of errors hold.
func TestIOErrors(t *testing.T) {
	near, far := pair(t)
	r := rawIOOf(t, near)

	near.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := r.Read(make([]byte, 10)); !IsTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a read past its deadline: %v; want a timeout", err)
	}
	near.SetReadDeadline(time.Time{})

	// Nobody reads far: the writes fill both buffers, then wait for room
	// until the deadline.
	near.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := r.Write(make([]byte, 64<<20))
	if !IsTimeout(err) || n == 0 || n >= 64<<20 {
		t.Errorf("a write nobody reads, past its deadline: %d bytes, %v; want some bytes and a timeout", n, err)
	}

	// A reset: the peer closes with unread bytes (SO_LINGER 0 to be sure).
	far.(*net.TCPConn).SetLinger(0)
	far.Close()
	time.Sleep(20 * time.Millisecond)
	near.SetDeadline(time.Now().Add(time.Second))
	var rerr error
	for range 100 { // the bytes written before may be read first
		if _, rerr = r.Read(make([]byte, 1<<20)); rerr != nil {
			break
		}
	}
	if !errors.Is(rerr, syscall.ECONNRESET) {
		t.Errorf("a read after the peer's reset: %v; want ECONNRESET", rerr)
	}
	var oe *net.OpError
	if !errors.As(rerr, &oe) || oe.Op != "read" {
		t.Errorf("error %#v: want a *net.OpError of a read, as net.Conn's", rerr)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Error("a write after the peer's reset succeeded")
	}

	near.Close()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a read of a closed connection: %v; want net.ErrClosed", err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a write to a closed connection: %v; want net.ErrClosed", err)
	}
}

// TestIONotASocket: what has no socket of its own is read and written as
// it is.
func TestIONotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rw := IO(a); rw != io.ReadWriter(a) {
		t.Errorf("IO(net.Pipe) is %T: want the conn itself", rw)
	}
}

// TestConnTLS: crypto/tls over Conn (as h1 serves HTTPS) handshakes and
// carries bytes both ways through the raw reads and writes; a read
// deadline fails a read without spoiling the connection (crypto/tls keeps
// no timeout); the socket stays reachable (SyscallConn, CloseWrite).
func TestConnTLS(t *testing.T) {
	near, far := pair(t)
	rc := Conn(wrapped{near})
	if _, ok := rc.(*conn); !ok {
		t.Fatalf("Conn of a socket is %T: want the raw-I/O conn", rc)
	}
	cert := testcert.New(t)
	srv := tls.Server(rc, &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12})
	cli := tls.Client(far, &tls.Config{RootCAs: cert.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	near.SetDeadline(time.Now().Add(10 * time.Second))
	far.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		b := make([]byte, 5)
		if _, err := io.ReadFull(cli, b); err == nil {
			cli.Write(append([]byte("re: "), b...))
		}
	}()
	if err := srv.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	near.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := srv.Read(make([]byte, 1)); !IsTimeout(err) {
		t.Fatalf("a read past its deadline: %v; want a timeout", err)
	}
	near.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := srv.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 9)
	if _, err := io.ReadFull(srv, b); err != nil || string(b) != "re: hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := rc.(syscall.Conn).SyscallConn(); err != nil {
		t.Errorf("SyscallConn: %v", err)
	}
	if err := rc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
	if n, err := far.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("the peer after CloseWrite read %d, %v; want io.EOF", n, err)
	}
	a, _ := net.Pipe()
	defer a.Close()
	if Conn(a) != a {
		t.Error("Conn(net.Pipe) is not the conn itself")
	}
}
