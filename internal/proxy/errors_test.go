package proxy

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	written := 0
	for i := range 100 {
		if _, ok := l.allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			written++
		}
	}
	if written != perSecond {
		t.Errorf("%d lines written in one second, want %d", written, perSecond)
	}
	n, ok := l.allow(t0.Add(time.Second))
	if !ok || n != 100-perSecond {
		t.Errorf("next second: ok=%v suppressed=%d, want the %d suppressed lines counted", ok, n, 100-perSecond)
	}
}
