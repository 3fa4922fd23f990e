package gateway

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener accepts at most a bound of connections at once. At the
// bound Accept waits for one to close, and new clients wait in the
// kernel's backlog (HAProxy's maxconn): a flood of idle connections costs
// the gateway no more than the bound of fds and goroutines.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	done    chan struct{}
	once    sync.Once
	name    string
	log     *slog.Logger
	open    prometheus.Gauge
	waits   prometheus.Counter
	lastLog time.Time // of the last "at the bound" line: one a minute at most
}

func newLimitListener(ln net.Listener, bound int, name string, log *slog.Logger, open prometheus.Gauge, waits prometheus.Counter) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, bound), done: make(chan struct{}),
		name: name, log: log, open: open, waits: waits}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.waits.Inc()
		if now := time.Now(); now.Sub(l.lastLog) > time.Minute {
			l.lastLog = now
			l.log.Warn("connection limit reached: new connections wait for one to close",
				"listener", l.name, "maxConnections", cap(l.slots))
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Inc()
	return &limitConn{Conn: c, l: l}, nil
}

// Close stops accepting, a wait at the bound included.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Dec()
		<-c.l.slots
	})
	return err
}

// SyscallConn and CloseWrite reach the TCP connection: the fast path polls
// its socket to learn that a client left, and both servers half-close
// before closing.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
