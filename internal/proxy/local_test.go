//go:build linux

package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
)

// TestLocalErrorIsNoServersFault: the gateway runs out of its own file
// descriptors (EMFILE on the dial to the master). The request gets 503,
// and neither server is marked down nor is there a switch: every server
// would have failed the same way.
func TestLocalErrorIsNoServersFault(t *testing.T) { forEngines(t, testLocalErrorIsNoServersFault) }

func testLocalErrorIsNoServersFault(t *testing.T, engine string) {
	// open counts the servers' connections: each server closes its end
	// of a connection the gateway closed in its own time, and an fd freed
	// so after the fds were used up would let the gateway's dial through.
	var open atomic.Int32
	hello := func(name string) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		s.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
			switch cs {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
		s.Start()
		return s
	}
	master, failover_ := hello("master"), hello("failover")
	defer master.Close()
	defer failover_.Close()
	h := newEngineHarness(t, engine, "", master.Listener.Addr().String(), failover_.Listener.Addr().String())
	front := h.serve(t)
	p, grp := h.p, h.group
	c := front.Client()
	get := func() (int, string) {
		resp, err := c.Get(front.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "master" {
		t.Fatalf("before: %d %q", code, body)
	}
	h.switched()
	p.CloseIdle() // the next request dials
	for deadline := time.Now().Add(5 * time.Second); open.Load() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the servers kept %d connections the gateway closed", open.Load())
		}
	}

	// Use up every fd the soft limit leaves, on the gateway's side.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(ents) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []*os.File
	release := func() {
		for _, f := range fill {
			f.Close()
		}
		fill = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	defer release()
	for range 100 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	code, _ := get()
	release()
	if code != http.StatusServiceUnavailable {
		t.Errorf("out of fds: status %d, want 503", code)
	}
	for _, s := range grp.Servers {
		if s.State() == backend.Down {
			t.Errorf("%s marked down for the gateway's own shortage", s.Name)
		}
	}
	if sw := h.switched(); len(sw) > 0 {
		t.Errorf("switched for the gateway's own shortage: %+v", sw)
	}
	if code, body := get(); code != 200 || body != "master" {
		t.Errorf("after: %d %q, want the master still", code, body)
	}
}
