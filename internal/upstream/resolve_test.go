package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestNameChangeDrainsPool: a server named by host name moves to another
// address. Kept-alive connections to the old one are no longer reused:
// traffic follows the name within a lookup interval, as checks do.
func TestNameChangeDrainsPool(t *testing.T) {
	serve := func(addr, name string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen %s (any 127.0.0.0/8 address is loopback on Linux): %v", addr, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln
	}
	old := serve("127.0.0.1:0", "old")
	port := old.Addr().(*net.TCPAddr).Port
	serve("127.0.0.2:"+strconv.Itoa(port), "new")
	var ip atomic.Pointer[netip.Addr]
	set := func(s string) { a := netip.MustParseAddr(s); ip.Store(&a) }
	set("127.0.0.1")
	addr := "app.test:" + strconv.Itoa(port)
	d := &net.Dialer{}
	u := New(func(ctx context.Context, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", netip.AddrPortFrom(*ip.Load(), uint16(port)).String())
	})
	u.names.every = 20 * time.Millisecond
	u.names.lookup = func(context.Context, string) ([]netip.Addr, error) { return []netip.Addr{*ip.Load()}, nil }
	get := func() string {
		wr := &Request{Ctx: context.Background(), Method: "GET", Head: []byte("GET / HTTP/1.1\r\nHost: app.test\r\n"),
			Connect: time.Second}
		now := time.Now()
		resp, err := u.RoundTrip(wr, addr, now, now.Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for range 5 {
		if got := get(); got != "old" {
			t.Fatalf("before the change: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	set("127.0.0.2")
	deadline := time.Now().Add(time.Second)
	n := 0
	for get() != "new" {
		n++
		if time.Now().After(deadline) {
			t.Fatalf("still served by the old address 1s after the name moved (%d requests): the pool kept reusing it", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 5 {
		if got := get(); got != "new" {
			t.Fatalf("after the change, served by %q", got)
		}
	}
}
