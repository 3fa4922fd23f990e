package backend

import "sync"

// Closer is an upgraded connection that can be closed with a websocket close code.
type Closer interface {
	CloseWith(code uint16, reason string)
}

// Conns tracks upgraded (hijacked) connections: http.Server.Shutdown does
// not see them, so the gateway must close them itself on a switch or exit.
type Conns struct {
	mu  sync.Mutex
	set map[Closer]struct{}
}

// Add tracks c until the returned function is called.
func (cs *Conns) Add(c Closer) (remove func()) {
	cs.mu.Lock()
	if cs.set == nil {
		cs.set = map[Closer]struct{}{}
	}
	cs.set[c] = struct{}{}
	cs.mu.Unlock()
	return func() {
		cs.mu.Lock()
		delete(cs.set, c)
		cs.mu.Unlock()
	}
}

// Len returns the number of open upgraded connections.
func (cs *Conns) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.set)
}

// CloseAll closes every tracked connection with code and reason.
func (cs *Conns) CloseAll(code uint16, reason string) int {
	cs.mu.Lock()
	all := make([]Closer, 0, len(cs.set))
	for c := range cs.set {
		all = append(all, c)
	}
	cs.mu.Unlock()
	for _, c := range all {
		go c.CloseWith(code, reason)
	}
	return len(all)
}
