package kube

import (
	"cmp"
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/tandemproxy/tandem/internal/config"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// endpoint is one serving endpoint of a Service, before names are settled.
type endpoint struct {
	server config.Server
	pod    *corev1.Pod // the targetRef pod when the informer holds it
	slice  string
}

// EndpointServers turns the EndpointSlices of a group's Service (dc.Service)
// into its servers: a pure function, tested on its own, the counterpart of
// Servers for the pod source and held to the same rules. An endpoint serves
// only when it is ready, serving and not terminating (nil conditions count
// as the API says: ready and serving, not terminating). Its name is its
// targetRef pod's role label (dc.RoleKey) when pods holds that pod (the
// discovery watches only pods carrying the label), else the pod's name,
// else the endpoint's hostname, else its address. Order: the pod's
// tandem.io/priority label or annotation, else a server named failover or
// backup is the backup. When two endpoints claim one name the oldest pod
// serves (then the lowest pod name, then address) and a note says so.
func EndpointServers(dc *config.Discovery, healthPort int, slices []*discoveryv1.EndpointSlice, pods []*corev1.Pod) ([]config.Server, []string) {
	var notes []string
	podByName := map[string]*corev1.Pod{}
	for _, p := range pods {
		podByName[p.Name] = p
	}
	seen := map[string]bool{} // an endpoint moving between slices is listed by both for a while
	var eps []endpoint
	for _, sl := range slices {
		port, hp, err := trafficPorts(dc, healthPort, func(ref string) (int, error) { return slicePort(sl, ref) })
		if err != nil {
			notes = append(notes, fmt.Sprintf("EndpointSlice %s/%s: %v", sl.Namespace, sl.Name, err))
			continue
		}
		for _, ep := range sl.Endpoints {
			if !endpointServes(ep.Conditions) || len(ep.Addresses) == 0 {
				continue
			}
			addr := ep.Addresses[0]
			e := endpoint{slice: sl.Name, server: config.Server{Address: net.JoinHostPort(addr, strconv.Itoa(port)), HealthPort: hp,
				Instance: addr, PodIP: addr, PodPort: port, PodAddressType: string(sl.AddressType)}}
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				e.server.Pod = cmp.Or(ref.Namespace, sl.Namespace) + "/" + ref.Name
				if ref.UID != "" {
					e.server.Instance = string(ref.UID)
				}
				e.pod = podByName[ref.Name]
			}
			key := e.server.Instance + " " + e.server.Address
			if seen[key] {
				continue
			}
			seen[key] = true
			e.server.Name = endpointName(ep, e.pod, dc.RoleKey, addr)
			e.server.Priority, e.server.Backup = priority(e.pod, dc.PriorityKey, e.server.Name)
			eps = append(eps, e)
		}
	}
	sort.SliceStable(eps, func(i, j int) bool { return olderEndpoint(eps[i], eps[j]) })
	byName := map[string]config.Server{}
	for _, e := range eps {
		name := e.server.Name
		if prev, dup := byName[name]; dup {
			notes = append(notes, fmt.Sprintf("endpoints %s (%s) and %s (%s) are both %q: the first serves, the second gets no traffic",
				cmp.Or(prev.Pod, prev.Address), prev.Address, cmp.Or(e.server.Pod, e.server.Address), e.server.Address, name))
			continue
		}
		byName[name] = e.server
	}
	return byNameSorted(byName), notes
}

// endpointServes reports whether an endpoint may get new traffic. A
// terminating endpoint that still serves gets none, as a terminating pod
// gets none from the pod source.
func endpointServes(c discoveryv1.EndpointConditions) bool {
	isTrue := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	return isTrue(c.Ready, true) && isTrue(c.Serving, true) && !isTrue(c.Terminating, false)
}

// endpointName is the stable name of an endpoint's server.
func endpointName(ep discoveryv1.Endpoint, pod *corev1.Pod, roleKey, addr string) string {
	if pod != nil {
		if r := pod.Labels[roleKey]; r != "" {
			return r
		}
	}
	if ep.TargetRef != nil && ep.TargetRef.Name != "" {
		return ep.TargetRef.Name
	}
	if ep.Hostname != nil && *ep.Hostname != "" {
		return *ep.Hostname
	}
	return addr
}

// olderEndpoint orders endpoints claiming one name: the oldest pod first
// (as Servers does), then the pod, then the address.
func olderEndpoint(a, b endpoint) bool {
	if a.pod != nil && b.pod != nil && !a.pod.CreationTimestamp.Equal(&b.pod.CreationTimestamp) {
		return a.pod.CreationTimestamp.Before(&b.pod.CreationTimestamp)
	}
	if a.server.Pod != b.server.Pod {
		return a.server.Pod < b.server.Pod
	}
	return a.server.Address < b.server.Address
}

// slicePort resolves a port number (used as is, the pod's port) or the
// name of one of the slice's ports (the Service port's name).
func slicePort(sl *discoveryv1.EndpointSlice, ref string) (int, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		return n, nil
	}
	for _, p := range sl.Ports {
		if p.Name != nil && *p.Name == ref && p.Port != nil {
			return int(*p.Port), nil
		}
	}
	return 0, fmt.Errorf("no port named %q", ref)
}
