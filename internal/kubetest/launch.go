package kubetest

import (
	"fmt"
	"net"
)

// Launch starts a test bed outside a test (the benchmarks under bench/):
// its files go in dir, and Stop ends it.
func Launch(dir string, opts ...Option) (*Cluster, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.start(bin, o); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// Stop ends a test bed from Launch.
func (c *Cluster) Stop() { c.stop() }

// StartRelay is NewRelay outside a test; Close ends it.
func StartRelay(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kubetest: relay: %w", err)
	}
	r := &Relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.serve)
	return r, nil
}
