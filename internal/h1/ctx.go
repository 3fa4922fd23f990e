package h1

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// clientCtx is the context of the requests of one connection: it ends when
// the client goes away, so the gateway drops the server's request too.
//
// net/http learns that with a read in its own goroutine for every request,
// which costs a goroutine, a system call and two deadline changes each
// time. clientCtx learns it only when asked: the first Done or AfterFunc
// during a request starts a watch, a peek that waits for the socket to
// become readable without consuming anything, and the end of the request
// stops it. The proxy asks only when an answer is slow to come (or dials),
// so most requests pay nothing.
type clientCtx struct {
	context.Context // values only: never done, no deadline
	c               *conn

	err atomic.Pointer[error]

	mu        sync.Mutex
	done      chan struct{} // made by the first Done
	fns       []afterFunc
	nextID    int
	inRequest bool
	wantWatch bool          // asked while the body was unread: watch after it
	watching  chan struct{} // closed when the watch ended; nil: none
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
	err := context.Canceled
	x.err.Store(&err)
	if x.done != nil {
		close(x.done)
	}
	for _, a := range x.fns {
		go a.f()
	}
	x.fns = nil
}

// startRequest marks a request under way: a Done or AfterFunc now watches.
func (x *clientCtx) startRequest() {
	x.mu.Lock()
	x.inRequest = true
	x.mu.Unlock()
}

// bodyRead is called when the request body was read to its end: a watch
// asked for before can start, the socket now holds nothing of this request.
func (x *clientCtx) bodyRead() {
	x.mu.Lock()
	if x.wantWatch {
		x.watchLocked()
	}
	x.mu.Unlock()
}

// endRequest stops the watch, if any, before the connection reads again.
func (x *clientCtx) endRequest() {
	x.mu.Lock()
	x.inRequest, x.wantWatch = false, false
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

func (x *clientCtx) watchLocked() {
	if !x.inRequest || x.watching != nil || x.err.Load() != nil {
		return
	}
	if x.c.body.n > 0 {
		// The body's bytes are still to come: they are not a sign of
		// anything, and the watch would hold the socket's read lock.
		x.wantWatch = true
		return
	}
	rc, ok := x.c.raw()
	if !ok {
		return
	}
	x.wantWatch = false
	// The watch lasts the whole request, not the head's deadline.
	x.c.noDeadline()
	w := make(chan struct{})
	x.watching = w
	go func() {
		defer close(w)
		if clientGone(rc) {
			x.cancel()
		}
	}()
}
