package gateway

import (
	"log/slog"
	"sync"
	"time"
)

// notifier runs the gateway's notification work (log lines, metrics,
// closing the websockets of a server that lost the active role) off the
// goroutine whose event caused it: the request that saw a server fail, a
// prober, the coordinator adopting a decision. Jobs run one at a time, in
// the order they were posted, on a goroutine that runs while there is
// work; post never waits for them.
type notifier struct {
	log *slog.Logger

	mu      sync.Mutex
	queue   []func()
	running bool
}

// post queues job after every job posted before it.
func (n *notifier) post(job func()) {
	n.mu.Lock()
	n.queue = append(n.queue, job)
	start := !n.running
	n.running = true
	n.mu.Unlock()
	if start {
		go n.drain()
	}
}

// wait returns once every job posted before it has run, or after d; it
// reports which.
func (n *notifier) wait(d time.Duration) bool {
	done := make(chan struct{})
	n.post(func() { close(done) })
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (n *notifier) drain() {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.queue, n.running = nil, false
			n.mu.Unlock()
			return
		}
		job := n.queue[0]
		n.queue[0] = nil
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.run(job)
	}
}

// run runs one job; a panic costs that notification, not the ones after.
func (n *notifier) run(job func()) {
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("notification failed", "panic", p)
		}
	}()
	job()
}
