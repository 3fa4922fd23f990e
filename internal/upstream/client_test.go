package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/servertest"
)

// TestAnswerWait: a bodiless request is written inside the wait for its
// answer (sendThenWait). Whenever the answer comes — at once, within
// FastAnswer, in pieces, after FastAnswer, never — the exchange ends as it
// must: an answer within FastAnswer counts as fast (the server is marked
// answered, nothing watched the client), a later one is still read, and
// a server that never answers times out at the head deadline, not at
// FastAnswer's. Fast or not is what the server sees as it answers: a try
// registered as waiting on it (Waiting) only after FastAnswer. The same connection carries them in turn, so a short
// deadline kept from one exchange is seen to cut none of the next.
func TestAnswerWait(t *testing.T) {
	var s *backend.Server
	waiting := make(chan int, 1)
	srv := servertest.New(t, func(c net.Conn, req *servertest.Request, n int) bool {
		// As it answers: the client's try registered as waiting, or not.
		answer := func() { waiting <- s.Waiting() }
		switch req.Header("X-Answer") {
		case "now":
		case "soon":
			time.Sleep(5 * time.Millisecond)
		case "pieces":
			answer()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-")
			time.Sleep(5 * time.Millisecond)
			io.WriteString(c, "Length: 6\r\n\r\n")
			time.Sleep(5 * time.Millisecond)
			io.WriteString(c, "pieces")
			return true
		case "late":
			time.Sleep(3 * FastAnswer)
		case "never":
			answer()
			time.Sleep(time.Second)
			return false
		}
		answer()
		servertest.Answer(c, req.Header("X-Answer"))
		return true
	})
	u := testClient()
	s = backend.NewRegistry(nil).Get(backend.Key{Group: "g", Name: "a", Address: srv.Addr()})
	exchange := func(answer string, wait time.Duration) (string, bool, error) {
		t.Helper()
		wr := &Request{Ctx: context.Background(), Method: "GET", Server: s, Resendable: true, Connect: time.Second,
			Head: []byte("GET / HTTP/1.1\r\nHost: app.test\r\nX-Answer: " + answer + "\r\n")}
		now := time.Now()
		resp, err := u.RoundTrip(wr, srv.Addr(), now, now.Add(wait))
		fast := <-waiting == 0
		if err != nil {
			return "", fast, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b), fast, err
	}
	for _, tc := range []struct {
		answer string
		fast   bool
	}{
		{"now", true}, {"soon", true}, {"now", true}, {"pieces", true}, {"late", false}, {"now", true},
	} {
		body, fast, err := exchange(tc.answer, 2*time.Second)
		if err != nil || body != tc.answer {
			t.Fatalf("answer %s: %q, %v", tc.answer, body, err)
		}
		if fast != tc.fast {
			t.Errorf("answer %s: counted as fast %v, want %v", tc.answer, fast, tc.fast)
		}
	}
	// The answer is seen in time and read only once the short deadline
	// passed (a goroutine scheduled late): a late answer, not a failure.
	testHookAfterWait = func() { time.Sleep(3 * FastAnswer) }
	body, fast, err := exchange("now", 2*time.Second)
	testHookAfterWait = nil
	if err != nil || body != "now" || !fast {
		t.Errorf("an answer read after the short deadline: %q, %v (fast %v), want it read", body, err, fast)
	}
	if n := u.idleTo(srv.Addr()); n != 1 {
		t.Errorf("%d idle connections after the exchanges, want the one that carried them all", n)
	}
	start := time.Now()
	_, _, err = exchange("never", 300*time.Millisecond)
	if took := time.Since(start); !errors.Is(err, ErrTimeout) || took < 300*time.Millisecond {
		t.Errorf("a server that never answers: %v after %v, want ErrTimeout at the 300ms head deadline", err, took)
	}
}

// TestShortDeadline: the short wait's deadline lies between fast and
// fast+FastAnswer, is kept from an earlier exchange only while it does,
// and never runs past the head's deadline (a try near the response
// timeout would otherwise take an answer that came after it).
func TestShortDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pc := &pconn{c: a}
	now := time.Now()
	fast, far := now.Add(FastAnswer), now.Add(time.Minute)
	pc.shortDeadline(fast, far)
	if d := pc.fastUntil.Sub(fast); d <= 0 || d > FastAnswer {
		t.Fatalf("armed %v after fast, want within (0, %v]", d, FastAnswer)
	}
	kept := pc.fastUntil
	pc.shortDeadline(fast.Add(time.Millisecond), far)
	if !pc.fastUntil.Equal(kept) {
		t.Errorf("a deadline still in range was armed anew")
	}
	pc.shortDeadline(fast.Add(FastAnswer), far)
	if pc.fastUntil.Equal(kept) {
		t.Errorf("a deadline no longer after fast was kept")
	}
	near := fast.Add(time.Millisecond)
	pc.shortDeadline(fast.Add(FastAnswer), near.Add(FastAnswer))
	pc.shortDeadline(fast, near)
	if !pc.fastUntil.Equal(near) {
		t.Errorf("short deadline %v past the head's %v", pc.fastUntil.Sub(now), near.Sub(now))
	}
}
