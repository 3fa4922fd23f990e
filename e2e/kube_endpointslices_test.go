package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/tandemproxy/tandem/internal/kubetest"
)

// Endpoint states as the EndpointSlice controller writes them for a pod
// that is ready, not ready, or being deleted (still serving its grace
// period).
const readyEP, notReadyEP, terminatingEP = "ready", "not ready", "terminating"

var bothReady = map[string]string{"master": readyEP, "failover": readyEP}

// sliceService is the Service "sense" of the EndpointSlices tests: a master
// and a failover app on one port number at two loopback addresses (as two
// pods share a container port), their pods labelled by role, the Service,
// and its slice sense-abcde, which the test writes as
// kube-controller-manager's EndpointSlice controller would from the pods
// (labels, targetRef, ready/serving/terminating). It cannot leave that to
// the controller itself: the API refuses loopback IPs in IPv4 and IPv6
// slices ("may not be in the loopback range"), and nothing else may be
// dialed here, so the slices are of addressType FQDN, each endpoint's name
// the loopback address its real process listens on.
type sliceService struct {
	cs               kubernetes.Interface
	master, failover *app
	port             int
	ips              map[string]string // by role
	pods             map[string]*corev1.Pod
}

func newSliceService(t *testing.T, cs kubernetes.Interface) *sliceService {
	t.Helper()
	_, port, _ := net.SplitHostPort(freePort(t))
	s := &sliceService{cs: cs, ips: map[string]string{"master": "127.0.0.2", "failover": "127.0.0.3"}, pods: map[string]*corev1.Pod{}}
	s.port, _ = strconv.Atoi(port)
	s.master = startApp(t, "master", s.ips["master"]+":"+port)
	s.failover = startApp(t, "failover", s.ips["failover"]+":"+port)
	for _, role := range []string{"master", "failover"} {
		s.pod(t, "sense-"+role+"-0", role)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sense", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "sense"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, s.slice("sense-abcde", "sense", bothReady), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// pod creates role's pod, running and ready at role's address, as the
// role's current pod.
func (s *sliceService) pod(t *testing.T, name, role string) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": role}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sense:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(s.port)}}}}},
	}
	p, err := s.cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setPodStatus(t, s.cs, p, s.ips[role], true)
	s.pods[role] = p
}

// slice is an EndpointSlice of service with an endpoint per role's pod in
// the given state.
func (s *sliceService) slice(name, service string, state map[string]string) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "e2e.tandem.io"}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(s.port))}},
	}
	for _, role := range []string{"master", "failover"} {
		p := s.pods[role]
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{s.ips[role]},
			Conditions: discoveryv1.EndpointConditions{Ready: new(state[role] == readyEP),
				Serving: new(state[role] != notReadyEP), Terminating: new(state[role] == terminatingEP)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: p.Name, UID: p.UID},
		})
	}
	return sl
}

// setState rewrites sense-abcde's endpoints in state, as the controller
// does when a pod's readiness changes.
func (s *sliceService) setState(t *testing.T, state map[string]string) {
	t.Helper()
	slices := s.cs.DiscoveryV1().EndpointSlices("default")
	cur, err := slices.Get(context.Background(), "sense-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Endpoints = s.slice("sense-abcde", "sense", state).Endpoints
	if _, err := slices.Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// servedBy asks g for /hello and returns which server answered (or the error).
func servedBy(g *replica) string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + g.addr + "/hello")
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return resp.Header.Get("X-Served-By")
}

// TestKubeEndpointSlices takes a group's servers from a Service
// (kubernetes.service) rather than a pod selector: the endpoints of the
// Service's EndpointSlices, named for their pods' role labels, followed as
// the slices' conditions flip (sliceService). The gateway runs as the
// ServiceAccount of deploy/kubernetes/rbac.yaml.
func TestKubeEndpointSlices(t *testing.T) {
	cl, cs := startKube(t)
	ctx := context.Background()
	svc := newSliceService(t, cs)
	// A slice of another Service, which the gateway must not take.
	other := svc.slice("other-abcde", "other", bothReady)
	other.Endpoints = other.Endpoints[:1]
	other.Endpoints[0].Addresses = []string{"127.0.0.9"}
	other.Endpoints[0].TargetRef = nil
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
		strings.NewReplacer("KUBECONFIG", applyRBAC(t, cl), "IDENTITY", "gw-0").Replace(kubeCoordination) +
		`groups:
  - name: sense
    kubernetes: {service: sense, port: http}
    health: {path: /status, expect: {body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 2, fall: 2}
    failback: {policy: auto}
`
	g := &replica{gw: startGateway(t, cfg), id: "gw-0"}
	if !untilTrue(20*time.Second, func() bool { return servedBy(g) == "master" }) {
		t.Fatalf("traffic does not follow the master: served by %q", servedBy(g))
	}
	st, err := g.state(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Groups[0].Servers {
		want := map[string]string{"master": svc.master.addr, "failover": svc.failover.addr}[s.Name]
		if s.Address != want || s.Pod != "default/sense-"+s.Name+"-0" {
			t.Errorf("server %s: address %q pod %q, want %s and pod default/sense-%s-0", s.Name, s.Address, s.Pod, want, s.Name)
		}
	}
	if n := len(st.Groups[0].Servers); n != 2 {
		t.Errorf("%d servers, want master and failover", n)
	}

	t.Run("the master's pod not ready: traffic moves to the failover", func(t *testing.T) {
		svc.setState(t, map[string]string{"master": notReadyEP, "failover": readyEP})
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "failover" }) {
			t.Fatalf("with the master not ready: served by %q", servedBy(g))
		}
	})

	t.Run("the master ready again: traffic fails back", func(t *testing.T) {
		svc.setState(t, bothReady)
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "master" }) {
			t.Fatalf("with the master ready again: served by %q", servedBy(g))
		}
		st, _ := g.state(t)
		hist := st.Groups[0].History
		if len(hist) < 2 || hist[len(hist)-2].To != "failover" || hist[len(hist)-1].To != "master" {
			t.Errorf("history %+v: want a switch to the failover, then back to the master", hist)
		}
	})
	t.Run("the master's pod replaced: the same server name, the new pod, traffic back on it", func(t *testing.T) {
		svc.setState(t, map[string]string{"master": terminatingEP, "failover": readyEP})
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "failover" }) {
			t.Fatalf("with the master's endpoint terminating (still serving): served by %q", servedBy(g))
		}
		if err := cs.CoreV1().Pods("default").Delete(ctx, svc.pods["master"].Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		svc.pod(t, "sense-master-1", "master")
		svc.setState(t, bothReady)
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "master" }) {
			t.Fatalf("with the new master pod ready: served by %q", servedBy(g))
		}
		st, _ := g.state(t)
		for _, s := range st.Groups[0].Servers {
			if s.Name == "master" && s.Pod != "default/sense-master-1" {
				t.Errorf("server master is pod %q, want default/sense-master-1", s.Pod)
			}
		}
	})
	if strings.Contains(g.out.String(), "forbidden") {
		t.Errorf("the gateway was refused something:\n%s", g.out.String())
	}
}

// TestKubeEndpointSlicesActiveService: a group whose servers are a
// Service's EndpointSlices (kubernetes.service) and whose active server is
// published as the one endpoint of a selector-less Service
// (kubernetes.activeService), for clients inside the cluster. The active
// slice names the master's endpoint (its address, port and pod, of the
// address type its source slice has) while the master serves; after the
// master's process is killed (its endpoint still ready in the slice: no
// kubelet noticed yet, only the gateway's checks), the failover's; and the
// master's again once it is back. The gateway runs as the ServiceAccount
// of deploy/kubernetes/rbac.yaml, first without create on endpointslices:
// the leader's first write is refused and logged, and once the verb is
// granted the slice appears with no switch to prompt it (the leader
// retries what it could not write).
func TestKubeEndpointSlicesActiveService(t *testing.T) {
	cl, cs := startKube(t)
	ctx := context.Background()
	svc := newSliceService(t, cs)
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sense-active", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := applyRBAC(t, cl)
	grant := cl.DropVerbs(t, ctx, kubetest.Grant{Namespace: "default", Role: "tandem-coordination", ServiceAccount: "tandem",
		Group: "discovery.k8s.io", Resource: "endpointslices", Verbs: []string{"create"}})
	cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
		strings.NewReplacer("KUBECONFIG", kubeconfig, "IDENTITY", "gw-0").Replace(kubeCoordination) +
		`groups:
  - name: sense
    kubernetes: {service: sense, port: http, activeService: sense-active}
    health: {path: /status, expect: {body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 2, fall: 2}
    failback: {policy: auto}
`
	g := &replica{gw: startGateway(t, cfg), id: "gw-0"}
	// activeEndpoint describes the active slice: its one endpoint's address
	// type, address, port and pod.
	activeEndpoint := func() string {
		sl, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "sense-active-tandem-active", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if sl.Labels[discoveryv1.LabelServiceName] != "sense-active" || len(sl.Endpoints) != 1 || len(sl.Ports) != 1 ||
			len(sl.Endpoints[0].Addresses) != 1 || sl.Endpoints[0].TargetRef == nil || sl.Ports[0].Port == nil {
			return fmt.Sprintf("labels %v, endpoints %+v, ports %+v", sl.Labels, sl.Endpoints, sl.Ports)
		}
		return fmt.Sprintf("%s %s:%d pod %s", sl.AddressType, sl.Endpoints[0].Addresses[0], *sl.Ports[0].Port, sl.Endpoints[0].TargetRef.Name)
	}
	want := func(role string) string {
		return fmt.Sprintf("FQDN %s:%d pod %s", svc.ips[role], svc.port, svc.pods[role].Name)
	}
	const refusal = "coordination: the active EndpointSlice: the API refuses the gateway's service account; grant get, create and update on endpointslices"
	if !untilTrue(20*time.Second, func() bool { return servedBy(g) == "master" && strings.Contains(g.out.String(), refusal) }) {
		t.Fatalf("served by %q; want the master, and the refusal of create logged:\n%s", servedBy(g), g.out.String())
	}
	if a := activeEndpoint(); !strings.Contains(a, "not found") {
		t.Fatalf("the active slice without create: %s", a)
	}
	grant()
	granted := len(g.out.String())
	if !untilTrue(10*time.Second, func() bool { return activeEndpoint() == want("master") }) {
		t.Fatalf("create granted again: the active endpoint is %q, want %q", activeEndpoint(), want("master"))
	}
	if st, err := g.state(t); err != nil || len(st.Groups[0].History) != 1 {
		t.Fatalf("history %+v (%v): want the start alone, the slice written with no switch", st.Groups, err)
	}

	t.Run("the master's process killed: the active endpoint is the failover's", func(t *testing.T) {
		svc.master.kill()
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "failover" && activeEndpoint() == want("failover") }) {
			t.Fatalf("served by %q, active endpoint %q; want the failover and %q", servedBy(g), activeEndpoint(), want("failover"))
		}
	})
	t.Run("the master back: the active endpoint is the master's again", func(t *testing.T) {
		svc.master = startApp(t, "master", svc.master.addr)
		if !untilTrue(10*time.Second, func() bool { return servedBy(g) == "master" && activeEndpoint() == want("master") }) {
			t.Fatalf("served by %q, active endpoint %q; want the master and %q", servedBy(g), activeEndpoint(), want("master"))
		}
	})
	if since := g.out.String()[granted:]; strings.Contains(since, "forbidden") || strings.Contains(since, "active EndpointSlice") {
		t.Errorf("the gateway could not keep the active EndpointSlice:\n%s", since)
	}

	t.Run("the slice replaced by one of another address type: the leader says so, and recreates it once deleted", func(t *testing.T) {
		slices := cs.DiscoveryV1().EndpointSlices("default")
		cur, err := slices.Get(ctx, "sense-active-tandem-active", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := slices.Delete(ctx, cur.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		ipv4 := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: cur.Name, Namespace: "default", Labels: cur.Labels},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: cur.Ports,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.99"}}}}
		if _, err := slices.Create(ctx, ipv4, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		mark := len(g.out.String())
		svc.master.kill() // a switch: the leader writes the failover's FQDN endpoint
		const conflict = "a slice's address type cannot change; delete the slice and the leader recreates it"
		if !untilTrue(10*time.Second, func() bool { return strings.Contains(g.out.String()[mark:], conflict) }) {
			t.Fatalf("no word of the address type the API cannot change:\n%s", g.out.String()[mark:])
		}
		// The switch's revocation emptied it (an empty slice keeps its
		// type); the failover's FQDN endpoint could not go in.
		if sl, err := slices.Get(ctx, cur.Name, metav1.GetOptions{}); err != nil || sl.AddressType != discoveryv1.AddressTypeIPv4 || len(sl.Endpoints) != 0 {
			t.Fatalf("the IPv4 slice during the conflict: %+v (%v), want IPv4 and no endpoint (the old master's gone, no FQDN in it)", sl, err)
		}
		if err := slices.Delete(ctx, cur.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if !untilTrue(10*time.Second, func() bool { return activeEndpoint() == want("failover") }) {
			t.Fatalf("after the delete the active endpoint is %q, want %q", activeEndpoint(), want("failover"))
		}
	})
}
