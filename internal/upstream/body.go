package upstream

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Body is a response body; it returns its connection to the pool
// when read to the end, and closes it otherwise.
type Body struct {
	rc       io.ReadCloser // nil: the n bytes that follow in pc.br
	n        int64
	pc       *pconn
	stop     func() bool
	eof      bool
	closed   bool
	reusable bool
	// ctx is the client's: when it ends, a read waiting on the server
	// ends too (watched: that is arranged already). idle bounds each wait
	// for more of the body.
	ctx     context.Context
	watched bool
	idle    time.Duration
}

// Buffered returns how many bytes of the body are read from the server
// already: that many reads of it need not wait.
func (b *Body) Buffered() int { return b.pc.br.Buffered() }

func (b *Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.pc.br.Buffered() == 0 {
		// This read waits on the server: bounded, and ended by a client
		// that leaves, so a stalled body holds no goroutine, fds or
		// connection slot for ever.
		if !b.watched {
			b.stop, b.watched = b.pc.watch(b.ctx), true
		}
		if b.idle > 0 {
			b.pc.c.SetReadDeadline(time.Now().Add(b.idle))
			b.pc.fastUntil = time.Time{}
			if err := b.ctx.Err(); err != nil {
				return 0, err // the client left before the deadline moved: its cancel stands
			}
		}
	}
	if b.rc == nil {
		return b.readLength(p)
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// readLength reads a body of b.n more bytes, as net/http's body does: the
// last bytes come with io.EOF, and an early end is io.ErrUnexpectedEOF.
func (b *Body) readLength(p []byte) (int, error) {
	if b.n <= 0 {
		b.eof = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.pc.br.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	case err == nil && b.n == 0:
		b.eof = true
		err = io.EOF
	}
	return n, err
}

func (b *Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop reports false when the client's cancel already ran and spoiled
	// the connection's deadline.
	live := b.stop()
	if !b.eof || !b.reusable || !live || b.pc.br.Buffered() > 0 {
		// net/http's body Close would read the rest; closing the socket is
		// what a client that left deserves. Bytes after the body answer no
		// request: reused, the connection would hand them to the next one.
		return b.pc.c.Close()
	}
	if b.rc != nil {
		b.rc.Close()
	}
	b.pc.u.put(b.pc)
	return nil
}
