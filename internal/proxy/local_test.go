//go:build linux

package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/metrics"
	"github.com/tandemproxy/tandem/internal/route"
)

// TestLocalErrorIsNoServersFault: the gateway runs out of its own file
// descriptors (EMFILE on the dial to the master). The request gets 503,
// and neither server is marked down nor is there a switch: every server
// would have failed the same way.
func TestLocalErrorIsNoServersFault(t *testing.T) {
	hello := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	}
	master, failover_ := hello("master"), hello("failover")
	defer master.Close()
	defer failover_.Close()
	yaml := "listeners:\n  - {name: web, address: \"127.0.0.1:0\"}\ngroups:\n  - name: app\n    health: {disabled: true}\n    servers:\n" +
		"      - {name: master, address: \"" + master.Listener.Addr().String() + "\"}\n" +
		"      - {name: failover, address: \"" + failover_.Listener.Addr().String() + "\", backup: true}\n"
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var switches []failover.Switch
	tbl := route.Build(cfg, backend.NewRegistry(nil), func(name string) *failover.Elector {
		return failover.NewElector(name, func(sw failover.Switch) { switches = append(switches, sw) })
	})
	grp := tbl.Group("app")
	grp.Elector.SetView(grp.View, "test")
	p := New(func() *route.Table { return tbl }, slog.New(slog.DiscardHandler), metrics.New(prometheus.NewRegistry()))
	front := httptest.NewServer(p)
	defer front.Close()
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
	switches = nil
	p.CloseIdle() // the next request dials

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
	if len(switches) > 0 {
		t.Errorf("switched for the gateway's own shortage: %+v", switches)
	}
	if code, body := get(); code != 200 || body != "master" {
		t.Errorf("after: %d %q, want the master still", code, body)
	}
}
