package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestNotifierOrderAndBlocking(t *testing.T) {
	var logs strings.Builder
	n := &notifier{log: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	release := make(chan struct{})
	var mu sync.Mutex
	var ran []int
	done := make(chan struct{})
	const jobs = 100
	start := time.Now()
	for i := range jobs {
		n.post(func() {
			switch i {
			case 0:
				<-release // a job that takes long holds up the ones after it, not post
			case 50:
				panic("a broken job")
			}
			mu.Lock()
			ran = append(ran, i)
			mu.Unlock()
			if i == jobs-1 {
				close(done)
			}
		})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("posting behind a blocked job took %v", took)
	}
	if n.wait(10 * time.Millisecond) {
		t.Errorf("wait returned true behind a blocked job")
	}
	mu.Lock()
	if len(ran) != 0 {
		t.Errorf("jobs ran past a blocked one: %v", ran)
	}
	mu.Unlock()
	close(release)
	if !n.wait(5 * time.Second) {
		t.Fatal("the jobs did not run")
	}
	select {
	case <-done: // wait returned after every job posted before it
	default:
		t.Fatal("wait returned before the jobs posted before it ran")
	}
	var want []int
	for i := range jobs {
		if i != 50 {
			want = append(want, i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ran, want) {
		t.Errorf("ran %v, want every job but the broken one, in order", ran)
	}
	if !strings.Contains(logs.String(), "notification failed") {
		t.Errorf("the panic was not logged: %q", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// recordingHandler keeps every log record as "message k=v..." in order,
// and holds up the one block matches until release is closed.
type recordingHandler struct {
	mu      sync.Mutex
	records []string
	block   func(string) bool
	entered chan struct{}
	release chan struct{}
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.Key + "=" + a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, line)
	h.mu.Unlock()
	if h.block(line) {
		close(h.entered)
		<-h.release
	}
	return nil
}

// index is the position of the first record that has every part, or -1.
func (h *recordingHandler) index(parts ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range h.records {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(r, p)
		}
		if all {
			return i
		}
	}
	return -1
}

// TestSwitchDoesNotBlockTheRequest: the request that sees the master fail
// causes the switch, and its answer does not wait for the switch handling
// (here a log line that takes as long as the test wants); the decision is
// in force at once, and the notifications come in order: the transition,
// the switch, the websockets of the former active server closed.
func TestSwitchDoesNotBlockTheRequest(t *testing.T) {
	h := &recordingHandler{
		block: func(line string) bool {
			return strings.HasPrefix(line, "active server switched") && strings.Contains(line, "from=master")
		},
		entered: make(chan struct{}),
		release: make(chan struct{}),
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	defer release()
	master, backup := app(t, "master"), app(t, "failover")
	g := startGateway(t, testConfig(master, backup), slog.New(h))
	e := g.table.Load().Group("app").Elector
	if e.Active() != "master" {
		t.Fatalf("active %q, want master", e.Active())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+g.Addr("http")+"/websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// An echo first: the master's handler is past its hijack, so the
	// connection is no longer its server's to close below (coder/websocket
	// writes the 101 before it hijacks, and httptest forgets a connection
	// only once hijacked).
	if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "ping" {
		t.Fatalf("echo: %q %v", b, err)
	}
	wsClosed := make(chan error, 1)
	go func() {
		_, _, err := ws.Read(ctx)
		wsClosed <- err
	}()
	if got := get(t, g, "/"); got != "master" {
		t.Fatalf("answered by %q, want master", got)
	}

	master.Listener.Close() // refused from now on
	master.CloseClientConnections()
	start := time.Now()
	if got := get(t, g, "/"); got != "failover" {
		t.Fatalf("answered by %q after the master failed, want failover", got)
	}
	took := time.Since(start)
	select {
	case <-h.entered: // the switch handling ran, and is held up
	case <-time.After(5 * time.Second):
		t.Fatal("the switch was not handled")
	}
	if took > 2*time.Second {
		t.Errorf("the request that caused the switch took %v", took)
	}
	if c := e.Current(); c.Active != "failover" || c.Epoch != 2 {
		t.Errorf("decision in force %+v while its handling is held up: want failover at epoch 2", c)
	}
	if got := get(t, g, "/"); got != "failover" {
		t.Errorf("next request answered by %q, want failover", got)
	}
	select {
	case err := <-wsClosed:
		t.Fatalf("websocket closed (%v) before the switch handling got to it", err)
	default:
	}

	release()
	select {
	case err := <-wsClosed:
		if code := websocket.CloseStatus(err); code != websocket.StatusServiceRestart {
			t.Errorf("websocket closed with %v (%d), want 1012", err, code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the former active server's websocket was not closed")
	}
	down := h.index("server state changed", "server=master", "to=down")
	switched := h.index("active server switched", "from=master", "to=failover")
	closed := -1
	until(t, "the log of the websockets closed", func() bool {
		closed = h.index("closing websockets of the former active server", "server=master")
		return closed >= 0
	})
	if !(0 <= down && down < switched && switched < closed) {
		t.Errorf("notifications at %d (down), %d (switched), %d (websockets closed): want them in that order\n%s",
			down, switched, closed, strings.Join(h.records, "\n"))
	}
}
