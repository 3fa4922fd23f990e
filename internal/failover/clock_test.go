package failover_test

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a failover.Clock that moves only when a test advances it.
// Timers due run in Advance's goroutine, in time order.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// armed receives a value for each AfterFunc, so a test can wait until
	// a goroutine armed its timer.
	armed chan struct{}
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), armed: make(chan struct{}, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		stopped := !t.done
		t.done = true
		return stopped
	}
}

// Advance moves the clock d forward, running every timer due by then at
// its own time.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		live := c.timers[:0]
		for _, t := range c.timers {
			if t.done {
				continue
			}
			live = append(live, t)
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		c.timers = live
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.done = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
	}
}

// Pending counts the timers neither fired nor stopped.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// waitArmed waits until some goroutine armed a timer (a bound, not a
// sleep: it fails the test after 5s).
func (c *fakeClock) waitArmed(t *testing.T) {
	t.Helper()
	select {
	case <-c.armed:
	case <-time.After(5 * time.Second):
		t.Fatal("no timer armed")
	}
}

func TestFakeClock(t *testing.T) {
	c := newFakeClock()
	start := c.Now()
	var fired []string
	at := func(name string) func() {
		return func() { fired = append(fired, name+"@"+c.Now().Sub(start).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	stop := c.AfterFunc(2*time.Second, at("stopped"))
	if !stop() || stop() {
		t.Errorf("stop: want true once, then false")
	}
	c.AfterFunc(2*time.Second, func() {
		at("b")()
		c.AfterFunc(0, at("b2")) // armed by a timer, due at once
	})
	c.Advance(time.Second - 1)
	if len(fired) != 0 || c.Pending() != 3 {
		t.Fatalf("fired %v, %d pending before any was due", fired, c.Pending())
	}
	c.Advance(5 * time.Second)
	want := []string{"a@1s", "b@2s", "b2@2s", "c@3s"}
	if !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
	if got := c.Now().Sub(start); got != 6*time.Second-1 {
		t.Errorf("clock at %v, want 6s-1ns", got)
	}
	if c.Pending() != 0 {
		t.Errorf("%d timers pending", c.Pending())
	}
}
