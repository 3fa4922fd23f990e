package kube

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestRefusedOnceAMinute: a refusal retried every second (the Lease lock)
// is logged at once, then once a minute with how many were held back; a
// refusal of another verb has its own line; any other error is not a
// refusal.
func TestRefusedOnceAMinute(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	refusedLog = newLimiter(1, time.Minute)
	refusedLog.now = func() time.Time { return now }
	t.Cleanup(func() { refusedLog = newLimiter(1, time.Minute) })
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	forbidden := apierrors.NewForbidden(coordinationv1.Resource("leases"), "tandem", errors.New("RBAC: no"))
	lines := func() []string {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	for i := range 90 { // a try a second for 90 s
		if !refused(log, "coordination", forbidden, "update on coordination.k8s.io leases") {
			t.Fatalf("try %d: a Forbidden error is not taken for a refusal", i)
		}
		if i < 89 {
			now = now.Add(time.Second)
		}
	}
	got := lines()
	if len(got) != 2 || strings.Contains(got[0], "suppressed") || !strings.Contains(got[1], "suppressed=59") {
		t.Fatalf("90 refusals in 90 s logged:\n%s\nwant 2 lines, the second saying suppressed=59", strings.Join(got, "\n"))
	}
	refused(log, "coordination", forbidden, "create on coordination.k8s.io leases")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "grant create on") {
		t.Errorf("another verb's refusal logged %q: want its own line at once", got)
	}
	if refused(log, "coordination", errors.New("connection refused"), "update on coordination.k8s.io leases") || len(lines()) != 0 {
		t.Error("an unreachable API was taken for a refusal")
	}
}
