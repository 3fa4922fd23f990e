// Package bufpool holds the buffered readers and writers of connections:
// one pool for the fast path's client connections and the websocket relay,
// so that a connection handed from one to the other (a hijack) gives its
// buffers back to the pool they came from.
package bufpool

import (
	"bufio"
	"io"
	"sync"
)

// Size is the size of every reader and writer, as in net/http. A request
// head must fit a reader to take the fast path.
const Size = 4 << 10

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, Size) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, Size) }}
)

// Reader returns a pooled reader of r.
func Reader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

// PutReader gives br back; what it still buffers is lost. A reader of
// another size (one net/http made) is dropped.
func PutReader(br *bufio.Reader) {
	if br.Size() != Size {
		return
	}
	br.Reset(nil)
	readers.Put(br)
}

// Writer returns a pooled writer to w.
func Writer(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// PutWriter gives bw back; what it still buffers is lost.
func PutWriter(bw *bufio.Writer) {
	if bw.Size() != Size {
		return
	}
	bw.Reset(nil)
	writers.Put(bw)
}
