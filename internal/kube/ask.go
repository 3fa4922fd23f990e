package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
	coordv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// An operator outside the gateway (kubectl tandem cluster switch|failback)
// asks the leader through the API: a Lease NAME-request-ID labelled
// tandem.io/request-of=NAME carries the request in an annotation; the leader
// carries it out and publishes the outcome in the decision's Done, where the
// asker reads it and then deletes its Lease. A Lease, not a replica's view:
// it is no replica, so it neither counts as live nor has to acknowledge.
const (
	requestLabel      = "tandem.io/request-of"
	requestAnnotation = "tandem.io/request"
	// requestMaxAge: an older request Lease (its asker gone before deleting
	// it) is never carried out, even once its outcome left Done.
	requestMaxAge = 2 * time.Minute
)

// freshAsksLocked returns the operators' requests still worth carrying out.
func (c *Coordinator) freshAsksLocked(now time.Time) []request {
	var out []request
	for _, l := range c.asks {
		if now.Sub(l.CreationTimestamp.Time) > requestMaxAge {
			continue
		}
		var rq request
		if json.Unmarshal([]byte(l.Annotations[requestAnnotation]), &rq) == nil && rq.ID != "" {
			out = append(out, rq)
		}
	}
	return out
}

// Ask has the leader of the gateway whose coordination objects are named
// name, in ns, carry out a on group, and returns its outcome (errors as a
// replica's admin API gives them: failover.ErrNothingToDo and the others).
func Ask(ctx context.Context, cs kubernetes.Interface, ns, name, group string, a failover.Action, wait time.Duration) error {
	var b [8]byte
	rand.Read(b[:])
	rq := request{ID: hex.EncodeToString(b[:]), Group: group, Action: a}
	raw, _ := json.Marshal(rq)
	l := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name + "-request-" + rq.ID, Namespace: ns,
		Labels: map[string]string{requestLabel: name}, Annotations: map[string]string{requestAnnotation: string(raw)}}}
	leases := cs.CoordinationV1().Leases(ns)
	if _, err := leases.Create(ctx, l, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("ask the leader: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = leases.Delete(dctx, l.Name, metav1.DeleteOptions{})
	}()
	deadline := time.Now().Add(wait)
	for {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name+"-decisions", metav1.GetOptions{})
		if err == nil {
			ds, derr := DecodeDecisions(cm.Data)
			if derr != nil {
				return derr
			}
			if r, ok := ds[group].outcome(rq.ID); ok {
				return errOf(r)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no outcome from the leader within %v: the request is withdrawn (see cluster status: is a replica leading? it may have been carried out just now)", wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
