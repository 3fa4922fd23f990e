package upstream

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// reresolveEvery is how often the addresses of a server named by host
// name are looked up again while it has traffic.
const reresolveEvery = 2 * time.Second

// names follows the addresses of servers named by host name, so that the
// pool stops reusing connections to an address the name no longer has
// (a DNS change): checks would follow the change, traffic would not.
type names struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	every  time.Duration

	mu   sync.Mutex
	byHP map[string]*nameState // host:port -> state
}

type nameState struct {
	host    string
	addrs   []netip.Addr // as last resolved; nil until then
	checked time.Time
	busy    bool // a lookup is under way
}

func newNames() *names {
	return &names{every: reresolveEvery, byHP: map[string]*nameState{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
}

// touch starts a lookup of addr's host in the background when it is a
// name last looked up more than every ago; changed runs with the new
// addresses when they differ from the last ones.
func (n *names) touch(addr string, now time.Time, changed func(addr string, current []netip.Addr)) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !isName(addr) {
		return
	}
	n.mu.Lock()
	st := n.byHP[addr]
	if st == nil {
		st = &nameState{host: host}
		n.byHP[addr] = st
	}
	if st.busy || now.Sub(st.checked) < n.every {
		n.mu.Unlock()
		return
	}
	st.busy, st.checked = true, now
	n.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err := n.lookup(ctx, host)
		for i := range got {
			got[i] = got[i].Unmap()
		}
		n.mu.Lock()
		st.busy = false
		if err != nil || len(got) == 0 {
			n.mu.Unlock()
			return // keep what we had: a failed lookup is no change
		}
		slices.SortFunc(got, netip.Addr.Compare)
		differ := st.addrs != nil && !slices.Equal(st.addrs, got)
		st.addrs = got
		n.mu.Unlock()
		if differ {
			changed(addr, got)
		}
	}()
}

// current reports whether the connection c to addr goes to an address
// addr's name still has (true when unknown or not a name).
func (n *names) current(addr string, c net.Conn) bool {
	n.mu.Lock()
	st := n.byHP[addr]
	var addrs []netip.Addr
	if st != nil {
		addrs = st.addrs
	}
	n.mu.Unlock()
	return addrs == nil || slices.Contains(addrs, remoteIP(c))
}

// isName reports whether addr (host:port) names its host rather than
// giving its address.
func isName(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(host)
	return err != nil
}

func remoteIP(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
