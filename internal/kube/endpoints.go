package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The active endpoint: for a group with kubernetes.activeService, the
// leader keeps one EndpointSlice of that selector-less Service pointing at
// the active server's pod only. During a revocation it has no endpoint, so
// in-cluster clients follow the same two phases as the gateway's.

// sliceManager is the managed-by label value (a label value: no slash).
const sliceManager = "tandem-gateway"

// sliceSync is one leadership's care of the active EndpointSlices. The
// leader hands it the decisions at every look, not only when they change:
// a write the API failed (a refused verb granted since, an API briefly
// away) is retried at the next look, and an active server whose address
// changed under the same decision is caught up. It remembers what it last
// wrote for each Service so that a look with nothing new costs no request.
type sliceSync struct {
	c       *Coordinator
	written map[string]string // by Service: the active endpoint last written
	warn    *limiter          // a failure retried at every look is logged once a minute
}

func newSliceSync(c *Coordinator) *sliceSync {
	return &sliceSync{c: c, written: map[string]string{}, warn: newLimiter(1, time.Minute)}
}

// sync brings every group's active EndpointSlice in line with ds.
func (s *sliceSync) sync(ctx context.Context, ds map[string]Decision) {
	c := s.c
	for _, g := range c.host.Groups() {
		if g.ActiveService == "" {
			continue
		}
		d, ok := ds[g.Name]
		if !ok {
			continue
		}
		var active *HostServer
		for i := range g.Servers {
			if g.Servers[i].Name == d.Active && !d.Revoking {
				active = &g.Servers[i]
			}
		}
		key := "none"
		if active != nil {
			key = fmt.Sprintf("%s %s %s %d", active.Pod, active.PodAddressType, active.PodIP, active.PodPort)
		}
		if w, ok := s.written[g.ActiveService]; ok && w == key {
			continue
		}
		err := c.syncSlice(ctx, g.ActiveService, active)
		if err == nil {
			s.written[g.ActiveService] = key
			continue
		}
		if ctx.Err() != nil || refused(c.log, "coordination: the active EndpointSlice", err, "get, create and update on endpointslices", "service", g.ActiveService) {
			continue
		}
		if ok, held := s.warn.allow(g.ActiveService); ok {
			c.log.Warn("coordination: cannot update the active EndpointSlice, retrying", "service", g.ActiveService, "error", err, "suppressed", held)
		}
	}
}

func (c *Coordinator) syncSlice(ctx context.Context, service string, active *HostServer) error {
	ns, svc, _ := strings.Cut(service, "/")
	name := svc + "-tandem-active"
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: sliceManager}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	if active != nil && active.PodIP != "" {
		switch {
		case active.PodAddressType != "":
			want.AddressType = discoveryv1.AddressType(active.PodAddressType)
		case strings.Contains(active.PodIP, ":"):
			want.AddressType = discoveryv1.AddressTypeIPv6
		}
		ep := discoveryv1.Endpoint{Addresses: []string{active.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}
		if pns, pod, ok := strings.Cut(active.Pod, "/"); ok {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: pns, Name: pod}
		}
		want.Endpoints = []discoveryv1.Endpoint{ep}
		want.Ports = []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To(int32(active.PodPort)), Protocol: ptr.To(corev1.ProtocolTCP)}}
	}
	slices := c.client.DiscoveryV1().EndpointSlices(ns)
	cur, err := slices.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if len(want.Endpoints) == 0 {
			// No slice gives the Service no endpoint, as an empty one
			// would; and the API fixes a slice's address type at creation,
			// which only an active server can tell (an EndpointSlice
			// source's may be FQDN).
			return nil
		}
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if cur.AddressType != want.AddressType {
		// The API refuses to change a slice's address type. An empty
		// slice (a revocation, no active server) holds no address: it
		// keeps the type it has.
		if len(want.Endpoints) > 0 {
			return fmt.Errorf("EndpointSlice %s/%s holds %s addresses and the active server's is %s: a slice's address type cannot change; delete the slice and the leader recreates it", ns, name, cur.AddressType, want.AddressType)
		}
		want.AddressType = cur.AddressType
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = slices.Update(ctx, want, metav1.UpdateOptions{})
	return err
}
