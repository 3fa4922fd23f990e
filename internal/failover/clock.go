package failover

import "time"

// Clock is the time an elector decides and waits by: the system's clock
// in production, a fake one in tests, so that they do not sleep.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, as time.AfterFunc does, unless
	// stop is called first; stop reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the system's clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Option configures an elector.
type Option func(*Elector)

// WithClock makes the elector take its time and its timers (failback
// delay, the wait bound of Await) from c instead of the system's clock.
func WithClock(c Clock) Option { return func(e *Elector) { e.clock = c } }
