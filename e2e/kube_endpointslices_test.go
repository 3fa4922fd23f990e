package e2e

import (
	"context"
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
)

// TestKubeEndpointSlices takes a group's servers from a Service
// (kubernetes.service) rather than a pod selector: the endpoints of the
// Service's EndpointSlices, named for their pods' role labels. The test
// writes the slices as kube-controller-manager's EndpointSlice controller
// would from the pods (labels, targetRef, ready/serving/terminating), and
// flips their conditions as the controller does when a pod's readiness
// changes. It cannot leave that to the controller itself: the API refuses
// loopback IPs in IPv4 and IPv6 slices ("may not be in the loopback
// range"), and nothing else may be dialed here, so the slices are of
// addressType FQDN, each endpoint's name the loopback address its real
// process listens on. The gateway runs as the ServiceAccount of
// deploy/kubernetes/rbac.yaml.
func TestKubeEndpointSlices(t *testing.T) {
	cl, cs := startKube(t)
	ctx := context.Background()
	// One port number on two loopback addresses, as two pods share a
	// container port.
	_, port, _ := net.SplitHostPort(freePort(t))
	master := startApp(t, "master", "127.0.0.2:"+port)
	failover := startApp(t, "failover", "127.0.0.3:"+port)
	portN, _ := strconv.Atoi(port)
	ips := map[string]string{"master": "127.0.0.2", "failover": "127.0.0.3"}
	pods := map[string]*corev1.Pod{}
	for _, role := range []string{"master", "failover"} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "sense-" + role + "-0", Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": role}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sense:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(portN)}}}}},
		}
		p, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setPodStatus(t, cs, p, ips[role], true)
		pods[role] = p
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sense", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "sense"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Service's slice, its endpoints in the state the controller
	// gives a pod that is ready, not ready, or being deleted (still serving
	// its grace period), and a slice of another Service, which the gateway
	// must not take.
	slices := cs.DiscoveryV1().EndpointSlices("default")
	const readyEP, notReadyEP, terminatingEP = "ready", "not ready", "terminating"
	slice := func(name, service string, state map[string]string) *discoveryv1.EndpointSlice {
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{
				discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "e2e.tandem.io"}},
			AddressType: discoveryv1.AddressTypeFQDN,
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(portN))}},
		}
		for _, role := range []string{"master", "failover"} {
			p := pods[role]
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{ips[role]},
				Conditions: discoveryv1.EndpointConditions{Ready: new(state[role] == readyEP),
					Serving: new(state[role] != notReadyEP), Terminating: new(state[role] == terminatingEP)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: p.Name, UID: p.UID},
			})
		}
		return sl
	}
	bothReady := map[string]string{"master": readyEP, "failover": readyEP}
	if _, err := slices.Create(ctx, slice("sense-abcde", "sense", bothReady), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := slice("other-abcde", "other", bothReady)
	other.Endpoints = other.Endpoints[:1]
	other.Endpoints[0].Addresses = []string{"127.0.0.9"}
	other.Endpoints[0].TargetRef = nil
	if _, err := slices.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setState := func(t *testing.T, state map[string]string) {
		t.Helper()
		cur, err := slices.Get(ctx, "sense-abcde", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Endpoints = slice("sense-abcde", "sense", state).Endpoints
		if _, err := slices.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
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
	servedBy := func() string {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + g.addr + "/hello")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return resp.Header.Get("X-Served-By")
	}
	if !untilTrue(20*time.Second, func() bool { return servedBy() == "master" }) {
		t.Fatalf("traffic does not follow the master: served by %q", servedBy())
	}
	st, err := g.state(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Groups[0].Servers {
		want := map[string]string{"master": master.addr, "failover": failover.addr}[s.Name]
		if s.Address != want || s.Pod != "default/sense-"+s.Name+"-0" {
			t.Errorf("server %s: address %q pod %q, want %s and pod default/sense-%s-0", s.Name, s.Address, s.Pod, want, s.Name)
		}
	}
	if n := len(st.Groups[0].Servers); n != 2 {
		t.Errorf("%d servers, want master and failover", n)
	}

	t.Run("the master's pod not ready: traffic moves to the failover", func(t *testing.T) {
		setState(t, map[string]string{"master": notReadyEP, "failover": readyEP})
		if !untilTrue(10*time.Second, func() bool { return servedBy() == "failover" }) {
			t.Fatalf("with the master not ready: served by %q", servedBy())
		}
	})

	t.Run("the master ready again: traffic fails back", func(t *testing.T) {
		setState(t, bothReady)
		if !untilTrue(10*time.Second, func() bool { return servedBy() == "master" }) {
			t.Fatalf("with the master ready again: served by %q", servedBy())
		}
		st, _ := g.state(t)
		hist := st.Groups[0].History
		if len(hist) < 2 || hist[len(hist)-2].To != "failover" || hist[len(hist)-1].To != "master" {
			t.Errorf("history %+v: want a switch to the failover, then back to the master", hist)
		}
	})
	t.Run("the master's pod replaced: the same server name, the new pod, traffic back on it", func(t *testing.T) {
		setState(t, map[string]string{"master": terminatingEP, "failover": readyEP})
		if !untilTrue(10*time.Second, func() bool { return servedBy() == "failover" }) {
			t.Fatalf("with the master's endpoint terminating (still serving): served by %q", servedBy())
		}
		if err := cs.CoreV1().Pods("default").Delete(ctx, pods["master"].Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "sense-master-1", Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": "master"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sense:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(portN)}}}}},
		}
		p, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setPodStatus(t, cs, p, ips["master"], true)
		pods["master"] = p
		setState(t, bothReady)
		if !untilTrue(10*time.Second, func() bool { return servedBy() == "master" }) {
			t.Fatalf("with the new master pod ready: served by %q", servedBy())
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
