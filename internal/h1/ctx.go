package h1

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// clientCtx is the context of one request: it ends when the client goes
// away, so the gateway drops the server's request too, and when the
// handler returned (as net/http's).
//
// net/http learns that the client left with a read in its own goroutine
// for every request, which costs a goroutine, a system call and two
// deadline changes each time. clientCtx learns it only when asked: the
// first Done or AfterFunc starts a watch, which waits on the socket for the
// client's hang-up without reading anything (clientGone), and the end of
// the request stops it. The proxy asks only when an answer is slow to come (or
// it dials), so most requests pay nothing.
type clientCtx struct {
	context.Context // the connection's values: never done, no deadline
	c               *conn

	err atomic.Pointer[error]

	mu       sync.Mutex
	done     chan struct{} // made by the first Done
	fns      []afterFunc
	nextID   int
	ended    bool          // the handler returned: no more watching
	unread   bool          // body bytes still to come: the watch waits for them
	asked    bool          // Done or AfterFunc was called
	watching chan struct{} // closed when the watch ended; nil: none
}

// newClientCtx returns the context of a request on c. Its unread is set
// before the handler runs, when the head told of a body.
func newClientCtx(c *conn) *clientCtx {
	return &clientCtx{Context: c.values, c: c}
}

type afterFunc struct {
	id int
	f  func()
}

func (x *clientCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.err.Load() != nil {
			close(x.done)
		}
	}
	x.watchLocked()
	return x.done
}

func (x *clientCtx) Err() error {
	if p := x.err.Load(); p != nil {
		return *p
	}
	return nil
}

// AfterFunc lets context.AfterFunc and derived contexts wait for the client
// without a goroutine each (context's afterFuncer).
func (x *clientCtx) AfterFunc(f func()) func() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err.Load() != nil {
		go f()
		return func() bool { return false }
	}
	id := x.nextID
	x.nextID++
	x.fns = append(x.fns, afterFunc{id: id, f: f})
	x.watchLocked()
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for i, a := range x.fns {
			if a.id == id {
				x.fns = append(x.fns[:i], x.fns[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel ends the context: the client went away, or the connection ended.
func (x *clientCtx) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err.Load() != nil {
		return
	}
	x.err.Store(&errCanceled)
	if x.done != nil {
		close(x.done)
	}
	for _, a := range x.fns {
		go a.f()
	}
	x.fns = nil
}

// bodyRead is called when the request body was read to its end: a watch
// asked for before can start, the socket now holds nothing of this request.
func (x *clientCtx) bodyRead() {
	x.mu.Lock()
	x.unread = false
	if x.asked {
		x.watchLocked()
	}
	x.mu.Unlock()
}

// end stops the watch, if any, before the connection reads again, and
// ends the context: the handler returned.
func (x *clientCtx) end() {
	x.stopWatch()
	x.cancel()
}

// stopWatch stops the watch, if any, and lets none start again; the
// context stays live (a hijack: the socket is the handler's to read now).
func (x *clientCtx) stopWatch() {
	x.mu.Lock()
	x.ended = true
	w := x.watching
	x.watching = nil
	x.mu.Unlock()
	if w != nil {
		x.c.nc.SetReadDeadline(aLongTimeAgo)
		x.c.dl = dlPast
		<-w
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// errCanceled is every ended context's error: one value, not one
// allocation a request.
var errCanceled = context.Canceled

// watchLocked starts the watch if it may: during the request, once the
// body is read (its bytes are no sign of anything, and the watch would
// hold the socket's read lock).
func (x *clientCtx) watchLocked() {
	x.asked = true
	if x.ended || x.unread || x.watching != nil || x.err.Load() != nil {
		return
	}
	rc, ok := x.c.raw()
	if !ok {
		return
	}
	// The watch lasts the whole request, not the head's deadline. Only
	// one watch a request sets it, and the connection's goroutine reads dl
	// only after end, which waits for the watch.
	x.c.noDeadline()
	w := make(chan struct{})
	x.watching = w
	go func() {
		defer close(w)
		if clientGone(rc, x.c.tls != nil) {
			x.c.gone.Store(true)
			x.cancel()
		}
	}()
}
