package upstream

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
)

// Request is one try of a request as it goes to a server: the head the
// caller rendered, the body, and what the exchange needs to know.
type Request struct {
	// Ctx is the client's: when it ends, so does the exchange.
	Ctx    context.Context
	Method string
	// Head is the request line and the header lines, the body's framing
	// and the epoch aside.
	Head []byte
	// Body and its length (-1: unknown, sent chunked); nil Body: none.
	Body          io.Reader
	ContentLength int64
	// Connect bounds dialing the server.
	Connect time.Duration
	// Epoch, when HasEpoch, is written as X-Tandem-Epoch: the epoch of
	// the decision that picked this try's server, so a retry that follows
	// a switch carries the new epoch, never one its server does not own.
	Epoch    uint64
	HasEpoch bool
	// Resendable: the caller sends this try again should its kept-alive
	// connection turn out closed (ErrStale); when not, it goes on a
	// connection checked first.
	Resendable bool
	// Upgrade: the request asks to switch protocols (see Client.Upgrade).
	Upgrade bool
	// Server is the try's server: a try that waits for its response head
	// registers there, to be abandoned if the server goes down or (unless
	// Pinned) loses the active role after Gen was read.
	Server *backend.Server
	Gen    uint64
	Pinned bool
	// StallAfter arms no-progress detection (0: off); OnStall reports it.
	StallAfter time.Duration
	OnStall    func(*backend.Server, time.Duration, int)
	// BodyIdle bounds each wait for more of the response body.
	BodyIdle time.Duration
}

// Write sends the request on bw and flushes it: the head, the epoch,
// the body with its framing (none for a request without one but POST, PUT
// and PATCH, which say Content-Length: 0).
func (wr *Request) Write(bw *bufio.Writer) error {
	bw.Write(wr.Head)
	if wr.HasEpoch {
		var num [20]byte
		bw.WriteString("X-Tandem-Epoch: ")
		bw.Write(strconv.AppendUint(num[:0], wr.Epoch, 10))
		bw.WriteString("\r\n")
	}
	switch {
	case wr.Body == nil:
		if wr.Method == http.MethodPost || wr.Method == http.MethodPut || wr.Method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case wr.ContentLength >= 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(wr.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		n, err := io.Copy(bw, io.LimitReader(wr.Body, wr.ContentLength))
		if err != nil {
			return err
		}
		if n != wr.ContentLength {
			return io.ErrUnexpectedEOF
		}
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, wr.Body); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}
