package kube

import (
	"context"
	"fmt"
	"strings"

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

// syncSlices brings every group's active EndpointSlice in line with ds.
func (c *Coordinator) syncSlices(ctx context.Context, ds map[string]Decision) {
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
		if err := c.syncSlice(ctx, g.ActiveService, active); err != nil && ctx.Err() == nil &&
			!refused(c.log, "coordination: the active EndpointSlice", err, "get, create and update on endpointslices", "service", g.ActiveService) {
			c.log.Warn("coordination: cannot update the active EndpointSlice", "service", g.ActiveService, "error", err)
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
