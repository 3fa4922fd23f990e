package backend

import "sync"

// Registry keeps servers by Key so that a reload that keeps a server keeps
// its health state and its upgraded connections.
type Registry struct {
	mu      sync.Mutex
	servers map[Key]*Server
	notify  func(Transition)
}

// NewRegistry returns an empty registry; notify receives every transition.
func NewRegistry(notify func(Transition)) *Registry {
	return &Registry{servers: map[Key]*Server{}, notify: notify}
}

// Get returns the server for k, creating it when new.
func (r *Registry) Get(k Key) *Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.servers[k]; ok {
		return s
	}
	s := newServer(k, r.notify)
	r.servers[k] = s
	return s
}

// Retain forgets every server not in keep and returns the forgotten ones,
// whose probers and connections the caller stops.
func (r *Registry) Retain(keep map[Key]bool) []*Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*Server
	for k, s := range r.servers {
		if !keep[k] {
			gone = append(gone, s)
			delete(r.servers, k)
		}
	}
	return gone
}
