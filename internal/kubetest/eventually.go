package kubetest

import (
	"context"
	"testing"
	"time"
)

// Eventually retries f every 100 ms until it succeeds, and fails t with f's
// last error when ctx ends: the wait for the test bed's controllers,
// scheduler and kwok to reach a state.
func Eventually(t testing.TB, ctx context.Context, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still failing: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
