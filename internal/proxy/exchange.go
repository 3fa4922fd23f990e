package proxy

import (
	"net/http"
	"time"

	"github.com/tandemproxy/tandem/internal/upstream"
)

// exchanger makes one exchange with a server: it sends a try and reads
// its response head. It is the only step of the request path that differs
// between the engines: tandem's own HTTP/1.1 client (upstream.Client) or
// net/http's Transport (netHTTP, engine: net/http). Everything around it,
// the retry rule, blame, abandoning, the body replay, the answer's relay
// and the metrics, is the same code for both; so the exchanger reports
// what failed with upstream's errors (ErrTimeout, ErrStale, ErrAbandoned,
// ErrUnsent, a *dialError for a failure to connect), and registers a try
// waiting for its head with its server (backend.Server.Wait).
type exchanger interface {
	// RoundTrip sends wr to addr and reads its response head before
	// headerDeadline; the body streams after, ended by the client's
	// leaving or by wr.BodyIdle without progress. now is when the try began.
	RoundTrip(wr *upstream.Request, addr string, now, headerDeadline time.Time) (*http.Response, error)
	// Upgrade does the same for a request to switch protocols, on a
	// connection no other request uses after it: the Body of a 101 is an
	// *upstream.Upgraded, the connection the relay owns from then on.
	Upgrade(wr *upstream.Request, addr string, now, headerDeadline time.Time) (*http.Response, error)
	// CloseIdle closes the idle connections it keeps (after a reload).
	CloseIdle()
}

var (
	_ exchanger = (*upstream.Client)(nil)
	_ exchanger = (*netHTTP)(nil)
)
