package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/sockwait"
	"github.com/tandemproxy/tandem/internal/upstream"
)

// Errors that decide the status a client gets.
var (
	errTimeout = upstream.ErrTimeout
	// errNoTimeLeft: the request's time ran out before a try began.
	errNoTimeLeft = fmt.Errorf("%w: no time left for another try", errTimeout)
	// errAbandoned: the try was waiting for a response head when its
	// server was marked down or lost the active role.
	errAbandoned = upstream.ErrAbandoned
	// errLocal: the gateway ran short of its own resources (fds, buffers).
	errLocal = errors.New("gateway out of local resources")
	// errRepick: nothing was sent, for the server was marked down or lost
	// the active role, or the decision that picked it changed: pick again.
	errRepick = upstream.ErrUnsent
	// errStale: a kept-alive connection the server had closed.
	errStale = upstream.ErrStale
)

// isTimeout reports whether err is a socket's (or a context's) timeout.
var isTimeout = sockwait.IsTimeout

// dialError marks a failure to connect: the request was not sent, so it is
// always safe to try the next server.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func isDialError(err error) bool {
	_, ok := errors.AsType[*dialError](err)
	return ok
}

// reason shortens an error to what an operator needs in a log line.
func reason(err error) string {
	switch {
	case backend.LocalError(err):
		return "local: " + err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, errTimeout), isTimeout(err): // context.DeadlineExceeded is a net.Error timeout too
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return err.Error()
}

// statusFor maps the final error of a request to the status the client gets.
func statusFor(err error) int {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, errNoServer), errors.Is(err, errLocal):
		return http.StatusServiceUnavailable
	case errors.Is(err, errAbandoned):
		return http.StatusBadGateway
	case errors.Is(err, errTimeout):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// writeError answers with a short body that names nothing internal.
func writeError(w http.ResponseWriter, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code) + "\n"))
}

// logLimiter lets through a few log lines a second and counts the rest, so
// that a storm of failures does not become a storm of log lines.
type logLimiter struct {
	mu         sync.Mutex
	second     int64 // unix second of the current budget
	used       int
	suppressed int
}

// perSecond is how many failure lines a second are written.
const perSecond = 10

// allow reports whether a line may be written now, with how many were
// suppressed since the last one written.
func (l *logLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.second {
		l.second, l.used = sec, 0
	}
	if l.used >= perSecond {
		l.suppressed++
		return 0, false
	}
	l.used++
	n := l.suppressed
	l.suppressed = 0
	return n, true
}
