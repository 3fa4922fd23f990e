package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// TestKubeDiscovery runs the gateway outside the cluster, as the external
// HAProxy of today's setups: pod IPs are not routable from there, so each
// instance is published as its own LoadBalancer Service (its ingress on
// loopback here) and the gateway dials that. The pods get addresses from a
// test range that nothing ever dials: they are only written into the active
// EndpointSlice, which in-cluster clients would use.
func TestKubeDiscovery(t *testing.T) {
	cl, cs := startKube(t)
	ctx := context.Background()
	master, failover := startApp(t, "master", ""), startApp(t, "failover", "")
	port := func(a *app) int {
		p, _ := strconv.Atoi(a.addr[strings.LastIndex(a.addr, ":")+1:])
		return p
	}
	// The pods listen on 8080 in their (simulated) network; the Services
	// publish each on the loopback port its real process listens on.
	pod := func(name, role, ip string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": role}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sense:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		}
		p, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setPodStatus(t, cs, p, ip, true)
		return p
	}
	service := func(role string, a *app) {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "sense-" + role, Namespace: "default", Labels: map[string]string{"app": "sense", "tandem.io/role": role}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"tandem.io/role": role},
				Ports: []corev1.ServicePort{{Name: "http", Port: int32(port(a)), TargetPort: intstr.FromInt(8080)}}},
		}
		s, err := cs.CoreV1().Services("default").Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "127.0.0.1"}}
		if _, err := cs.CoreV1().Services("default").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The selector-less Service whose endpoints tandem keeps on the master.
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sense-active", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	masterPod := pod("sense-master-0", "master", "10.244.0.10")
	pod("sense-failover-0", "failover", "10.244.0.11")
	service("master", master)
	service("failover", failover)

	cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
		strings.NewReplacer("KUBECONFIG", cl.Kubeconfig(), "IDENTITY", "gw-0").Replace(kubeCoordination) +
		`groups:
  - name: sense
    kubernetes: {selector: app=sense, port: http, address: service, activeService: sense-active}
    health: {path: /status, expect: {body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 2, fall: 2}
    failback: {policy: auto}
`
	g := &replica{gw: startGateway(t, cfg), id: "gw-0"}
	activeEndpoint := func() string {
		sl, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "sense-active-tandem-active", metav1.GetOptions{})
		if err != nil || sl.Labels["kubernetes.io/service-name"] != "sense-active" || len(sl.Endpoints) != 1 || len(sl.Ports) != 1 {
			return ""
		}
		return fmt.Sprintf("%s:%d", sl.Endpoints[0].Addresses[0], *sl.Ports[0].Port)
	}
	servedBy := func() string {
		resp, err := http.Get("http://" + g.addr + "/hello")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return resp.Header.Get("X-Served-By")
	}
	if !untilTrue(20*time.Second, func() bool { return servedBy() == "master" && activeEndpoint() == "10.244.0.10:8080" }) {
		t.Fatalf("through the master's Service: served by %q, active endpoint %q", servedBy(), activeEndpoint())
	}
	st, _ := g.state(t)
	for _, s := range st.Groups[0].Servers {
		want := map[string]string{"master": master.addr, "failover": failover.addr}[s.Name]
		if s.Address != want || s.Pod == "" {
			t.Errorf("server %s: address %q pod %q, want the Service's %s and its pod", s.Name, s.Address, s.Pod, want)
		}
	}

	t.Run("a pod that is not ready gets no new traffic", func(t *testing.T) {
		setPodStatus(t, cs, masterPod, "10.244.0.10", false)
		if !untilTrue(5*time.Second, func() bool { return servedBy() == "failover" && activeEndpoint() == "10.244.0.11:8080" }) {
			t.Fatalf("with the master not ready: served by %q, active endpoint %q", servedBy(), activeEndpoint())
		}
	})

	t.Run("a new pod under the same role is the same server name, with fresh health", func(t *testing.T) {
		if err := cs.CoreV1().Pods("default").Delete(ctx, masterPod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		replaced := time.Now()
		pod("sense-master-1", "master", "10.244.0.12")
		if !untilTrue(10*time.Second, func() bool { return servedBy() == "master" && activeEndpoint() == "10.244.0.12:8080" }) {
			t.Fatalf("with the new master pod: served by %q, active endpoint %q", servedBy(), activeEndpoint())
		}
		st, _ := g.state(t)
		for _, s := range st.Groups[0].Servers {
			if s.Name == "master" && s.Pod != "default/sense-master-1" {
				t.Errorf("server master is pod %q, want default/sense-master-1", s.Pod)
			}
			if s.Name == "master" && s.Since.Before(replaced) {
				t.Errorf("server master's health dates from %v, before its new pod (%v): the old pod's state was kept", s.Since, replaced)
			}
		}
		hist := st.Groups[0].History
		if len(hist) == 0 || hist[len(hist)-1].To != "master" {
			t.Errorf("history %+v: want the last switch back to master", hist)
		}
	})
}

// setPodStatus sets what a kubelet would: running, ready or not, an IP.
func setPodStatus(t *testing.T, cs kubernetes.Interface, p *corev1.Pod, ip string, ready bool) {
	t.Helper()
	cur, err := cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	cur.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}
	if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
