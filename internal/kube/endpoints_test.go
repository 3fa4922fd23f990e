package kube

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// sliceHost is a Host of one group "g" whose active Service is
// apps/sense-active; servers is what Groups says now.
type sliceHost struct{ servers []HostServer }

func (h *sliceHost) Groups() []HostGroup {
	return []HostGroup{{Name: "g", ActiveService: "apps/sense-active", Servers: h.servers}}
}

func (h *sliceHost) SetDrained(string, string, bool, string) {}

// TestSliceSync: the leader hands sliceSync the decisions at every look.
// It writes the active EndpointSlice only when what it should hold changed
// since its last successful write, so a failed write is tried again at the
// next look and a look with nothing new sends no request; the slice is
// created at the first active server, of its address type, and keeps that
// type when a revocation empties it.
func TestSliceSync(t *testing.T) {
	master := HostServer{Name: "master", Pod: "apps/sense-master-0", PodIP: "sense-master.apps", PodPort: 8080, PodAddressType: "FQDN"}
	failover := HostServer{Name: "failover", Pod: "apps/sense-failover-0", PodIP: "10.0.0.3", PodPort: 8080}
	client := fake.NewClientset()
	host := &sliceHost{servers: []HostServer{master, failover}}
	var logs bytes.Buffer
	c := &Coordinator{client: client, host: host, log: slog.New(slog.NewTextHandler(&logs, nil))}
	s := newSliceSync(c)
	ctx := context.Background()
	// slice describes the active slice: its address type and endpoints.
	slice := func() string {
		sl, err := client.DiscoveryV1().EndpointSlices("apps").Get(ctx, "sense-active-tandem-active", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		var eps []string
		for _, ep := range sl.Endpoints {
			eps = append(eps, fmt.Sprintf("%s:%d %s", ep.Addresses[0], *sl.Ports[0].Port, ep.TargetRef.Name))
		}
		return fmt.Sprintf("%s %v %s", sl.AddressType, eps, sl.Labels[discoveryv1.LabelServiceName])
	}
	for _, step := range []struct {
		name     string
		decision Decision
		servers  []HostServer // nil: as they are
		requests string       // the verbs sent, in order
		slice    string
		log      string // in the log since the step before
	}{
		{name: "no active server yet: no slice to create", decision: Decision{}, requests: "get", slice: `endpointslices.discovery.k8s.io "sense-active-tandem-active" not found`},
		{name: "the same again: no request", decision: Decision{}, requests: "", slice: `endpointslices.discovery.k8s.io "sense-active-tandem-active" not found`},
		{name: "the master active: created with its address type", decision: Decision{Active: "master", Epoch: 1}, requests: "get create", slice: "FQDN [sense-master.apps:8080 sense-master-0] sense-active"},
		{name: "the same again: no request", decision: Decision{Active: "master", Epoch: 1}, requests: "", slice: "FQDN [sense-master.apps:8080 sense-master-0] sense-active"},
		{name: "the master's address changed, the same decision: updated",
			decision: Decision{Active: "master", Epoch: 1},
			servers:  []HostServer{{Name: "master", Pod: "apps/sense-master-1", PodIP: "sense-master-1.apps", PodPort: 8080, PodAddressType: "FQDN"}, failover},
			requests: "get update", slice: "FQDN [sense-master-1.apps:8080 sense-master-1] sense-active"},
		{name: "a revocation: emptied, the type kept", decision: Decision{Active: "master", Epoch: 1, Revoking: true}, requests: "get update", slice: "FQDN [] sense-active"},
		{name: "the failover's IPv4 address into the FQDN slice: refused by the gateway, logged",
			decision: Decision{Active: "failover", Epoch: 2}, requests: "get", slice: "FQDN [] sense-active",
			log: "a slice's address type cannot change; delete the slice and the leader recreates it"},
		{name: "still so at the next look: tried again, not logged again within the minute",
			decision: Decision{Active: "failover", Epoch: 2}, requests: "get", slice: "FQDN [] sense-active"},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.servers != nil {
				host.servers = step.servers
			}
			client.ClearActions()
			logs.Reset()
			s.sync(ctx, map[string]Decision{"g": step.decision})
			var verbs []string
			for _, a := range client.Actions() {
				verbs = append(verbs, a.GetVerb())
			}
			if got := strings.Join(verbs, " "); got != step.requests {
				t.Errorf("requests %q, want %q", got, step.requests)
			}
			if got := slice(); got != step.slice {
				t.Errorf("slice %q, want %q", got, step.slice)
			}
			if step.log == "" && logs.Len() > 0 || !strings.Contains(logs.String(), step.log) {
				t.Errorf("log %q, want %q", logs.String(), step.log)
			}
		})
	}
}
