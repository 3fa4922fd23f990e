package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestDiscoveryOfControllerSlices runs the discovery's informers against a
// real kube-apiserver whose EndpointSlices kube-controller-manager's
// EndpointSlice controller makes from pods on a kwok node: the slices'
// real shape (the Service port's name, the target port's number,
// targetRef, the conditions the controller derives from a pod's
// readiness), which e2e/kube_endpointslices_test.go cannot use for traffic
// (the API refuses loopback addresses in them, and kwok's pod IPs must
// never be dialed: nothing here dials, the test reads the snapshots).
func TestDiscoveryOfControllerSlices(t *testing.T) {
	cl := kubetest.Start(t, kubetest.WithControllerManager(), kubetest.WithKWOK(1))
	cs := cl.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := func(name, app, role string) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app, "tandem.io/role": role}},
			Spec: corev1.PodSpec{NodeName: "kwok-node-0", Containers: []corev1.Container{{Name: "app", Image: "sense:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("sense-master-0", "sense", "master")
	pod("sense-failover-0", "sense", "failover")
	pod("other-0", "other", "master") // a role label, but not the Service's
	if _, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sense", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "sense"},
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Kubernetes: &config.Kubernetes{Namespace: "default"}, Groups: []config.Group{{Name: "sense",
		Kubernetes: &config.Discovery{Service: "sense", Port: "web", Address: config.AddressPod,
			RoleKey: "tandem.io/role", PriorityKey: "tandem.io/priority"}}}}
	d := NewDiscovery(cs, cfg, func(Snapshot) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	// servers polls the latest snapshot until it names exactly want
	// (name -> pod), each at its pod's IP and the target port.
	servers := func(want map[string]string) {
		t.Helper()
		kubetest.Eventually(t, ctx, func() error {
			got := d.Current()["sense"]
			if len(got) != len(want) {
				return fmt.Errorf("servers %+v, want %v", got, want)
			}
			for _, s := range got {
				p, err := cs.CoreV1().Pods("default").Get(ctx, want[s.Name], metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("server %s: %w", s.Name, err)
				}
				if s.Pod != "default/"+p.Name || s.Address != p.Status.PodIP+":8080" || s.Instance != string(p.UID) || s.Backup != (s.Name == "failover") {
					return fmt.Errorf("server %+v, want pod %s at %s:8080", s, p.Name, p.Status.PodIP)
				}
			}
			return nil
		})
	}
	servers(map[string]string{"master": "sense-master-0", "failover": "sense-failover-0"})

	// What a kubelet does when a readiness probe fails, and then passes.
	setReady := func(ready bool) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "sense-master-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				p.Status.Conditions[i].Status = map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse}[ready]
			}
		}
		if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady(false)
	servers(map[string]string{"failover": "sense-failover-0"})
	setReady(true)
	servers(map[string]string{"master": "sense-master-0", "failover": "sense-failover-0"})
}
