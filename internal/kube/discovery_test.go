package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
)

const (
	roleKey     = "tandem.io/role"
	priorityKey = "tandem.io/priority"
)

// pod is a running, ready pod of namespace "ns" created at t0, with
// container ports http (8080) and health (9090); mods change it.
func pod(name, ip string, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid"),
			CreationTimestamp: metav1.NewTime(t0), Labels: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080}, {Name: "health", ContainerPort: 9090}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func role(r string) func(*corev1.Pod) { return label(roleKey, r) }

func label(k, v string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Labels[k] = v } }

func created(d time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(d)) }
}

func ownedBy(kind, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "owner", Controller: &yes}}
	}
}

// server is what Servers makes of pod(podName, ip) serving as name.
func server(name, podName, ip, addr string) config.Server {
	return config.Server{Name: name, Address: addr, Instance: podName + "-uid", Pod: "ns/" + podName, PodIP: ip, PodPort: 8080}
}

func with(s config.Server, f func(*config.Server)) config.Server { f(&s); return s }

// service publishes role r's port 80 (node port 30080) to 8080 and 81
// (node port 30081) to 9090.
func service(r string, ingress ...corev1.LoadBalancerIngress) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-" + r, Namespace: "ns", Labels: map[string]string{roleKey: r}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080},
			{Name: "health", Port: 81, TargetPort: intstr.FromInt32(9090), NodePort: 30081},
		}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}},
	}
}

func TestServers(t *testing.T) {
	dc := func(f func(*config.Discovery)) *config.Discovery {
		d := &config.Discovery{Namespace: "ns", Selector: "app=sense", Port: "8080", Address: config.AddressPod,
			RoleKey: roleKey, PriorityKey: priorityKey}
		if f != nil {
			f(d)
		}
		return d
	}
	master := server("master", "m", "10.0.0.1", "10.0.0.1:8080")
	tests := []struct {
		name       string
		dc         *config.Discovery
		healthPort int
		pods       []*corev1.Pod
		svcs       []*corev1.Service
		want       []config.Server
		notes      []string // substrings, one note each, in order
	}{
		{
			name: "running and ready serves",
			dc:   dc(nil),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			want: []config.Server{master},
		},
		{
			name: "not ready, terminating, pending, without IP or readiness: no traffic",
			dc:   dc(nil),
			pods: []*corev1.Pod{
				pod("m", "10.0.0.1", role("master")),
				pod("notready", "10.0.0.2", role("a"), func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }),
				pod("noready", "10.0.0.3", role("b"), func(p *corev1.Pod) { p.Status.Conditions = nil }),
				pod("terminating", "10.0.0.4", role("c"), func(p *corev1.Pod) { now := metav1.NewTime(t0); p.DeletionTimestamp = &now }),
				pod("pending", "10.0.0.5", role("d"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
				pod("failed", "10.0.0.6", role("e"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
				pod("noip", "", role("f")),
			},
			want: []config.Server{master},
		},
		{
			name: "names: role label, Deployment, ReplicaSet, StatefulSet, the pod's own; sorted",
			dc:   dc(nil),
			pods: []*corev1.Pod{
				pod("web-7d9f8-x2x2x", "10.0.0.2", ownedBy("ReplicaSet", "web-7d9f8"), label("pod-template-hash", "7d9f8")),
				pod("db-0", "10.0.0.3", ownedBy("StatefulSet", "db")),
				pod("rs-abcde", "10.0.0.4", ownedBy("ReplicaSet", "rs")),
				pod("lonely", "10.0.0.5"),
				pod("m", "10.0.0.1", role("master"), ownedBy("StatefulSet", "m")),
			},
			want: []config.Server{
				server("db-0", "db-0", "10.0.0.3", "10.0.0.3:8080"),
				server("lonely", "lonely", "10.0.0.5", "10.0.0.5:8080"),
				master,
				server("rs", "rs-abcde", "10.0.0.4", "10.0.0.4:8080"),
				server("web", "web-7d9f8-x2x2x", "10.0.0.2", "10.0.0.2:8080"),
			},
		},
		{
			name: "two pods of one role: the oldest serves, a note says so",
			dc:   dc(nil),
			pods: []*corev1.Pod{
				pod("new", "10.0.0.2", role("master"), created(time.Minute)),
				pod("old", "10.0.0.1", role("master"), created(-time.Hour)),
			},
			want:  []config.Server{server("master", "old", "10.0.0.1", "10.0.0.1:8080")},
			notes: []string{`pods ns/old and ns/new are both "master": ns/old serves, new gets no traffic`},
		},
		{
			name:  "two pods of one role created together: by pod name",
			dc:    dc(nil),
			pods:  []*corev1.Pod{pod("m2", "10.0.0.2", role("master")), pod("m1", "10.0.0.1", role("master"))},
			want:  []config.Server{server("master", "m1", "10.0.0.1", "10.0.0.1:8080")},
			notes: []string{`ns/m1 serves, m2 gets no traffic`},
		},
		{
			name: "a pod that does not serve leaves its role to the other",
			dc:   dc(nil),
			pods: []*corev1.Pod{
				pod("old", "10.0.0.1", role("master"), created(-time.Hour), func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
				pod("new", "10.0.0.2", role("master")),
			},
			want: []config.Server{server("master", "new", "10.0.0.2", "10.0.0.2:8080")},
		},
		{
			name: "named traffic and health ports",
			dc:   dc(func(d *config.Discovery) { d.Port, d.HealthPort = "http", "health" }),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			want: []config.Server{with(master, func(s *config.Server) { s.HealthPort = 9090 })},
		},
		{
			name:       "numeric port, the group's health port",
			dc:         dc(func(d *config.Discovery) { d.Port = "9090" }),
			healthPort: 8081,
			pods:       []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			want: []config.Server{with(master, func(s *config.Server) {
				s.Address, s.PodPort, s.HealthPort = "10.0.0.1:9090", 9090, 8081
			})},
		},
		{
			name:  "no container port of that name: a note, no server",
			dc:    dc(func(d *config.Discovery) { d.Port = "grpc" }),
			pods:  []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			notes: []string{`pod ns/m: no container port named "grpc"`},
		},
		{
			name:  "no health port of that name: a note, no server",
			dc:    dc(func(d *config.Discovery) { d.HealthPort = "probe" }),
			pods:  []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			notes: []string{`pod ns/m: health port: no container port named "probe"`},
		},
		{
			name: "priority from label or annotation; role failover or backup is the backup",
			dc:   dc(nil),
			pods: []*corev1.Pod{
				pod("p1", "10.0.0.1", role("one"), label(priorityKey, "2")),
				pod("p2", "10.0.0.2", role("two"), func(p *corev1.Pod) { p.Annotations = map[string]string{priorityKey: "3"} }),
				pod("p3", "10.0.0.3", role("failover")),
				pod("p4", "10.0.0.4", role("backup")),
				pod("p5", "10.0.0.5", role("master"), label(priorityKey, "x")),
			},
			want: []config.Server{
				with(server("backup", "p4", "10.0.0.4", "10.0.0.4:8080"), func(s *config.Server) { s.Backup = true }),
				with(server("failover", "p3", "10.0.0.3", "10.0.0.3:8080"), func(s *config.Server) { s.Backup = true }),
				server("master", "p5", "10.0.0.5", "10.0.0.5:8080"),
				with(server("one", "p1", "10.0.0.1", "10.0.0.1:8080"), func(s *config.Server) { s.Priority = 2 }),
				with(server("two", "p2", "10.0.0.2", "10.0.0.2:8080"), func(s *config.Server) { s.Priority = 3 }),
			},
		},
		{
			name: "an explicit priority wins over the failover role",
			dc:   dc(nil),
			pods: []*corev1.Pod{pod("f", "10.0.0.3", role("failover"), label(priorityKey, "1"))},
			want: []config.Server{with(server("failover", "f", "10.0.0.3", "10.0.0.3:8080"), func(s *config.Server) { s.Priority = 1 })},
		},
		{
			name: "IPv6 pod IP in brackets",
			dc:   dc(nil),
			pods: []*corev1.Pod{pod("m", "fd00::5", role("master"))},
			want: []config.Server{server("master", "m", "fd00::5", "[fd00::5]:8080")},
		},
		{
			name: "service address: a LoadBalancer's ingress IP and the service ports",
			dc:   dc(func(d *config.Discovery) { d.Address, d.HealthPort = config.AddressService, "health" }),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs: []*corev1.Service{service("failover", corev1.LoadBalancerIngress{IP: "203.0.113.9"}),
				service("master", corev1.LoadBalancerIngress{IP: "203.0.113.5"})},
			want: []config.Server{with(master, func(s *config.Server) { s.Address, s.HealthPort = "203.0.113.5:80", 81 })},
		},
		{
			name: "service address: a LoadBalancer's ingress hostname",
			dc:   dc(func(d *config.Discovery) { d.Address = config.AddressService }),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs: []*corev1.Service{service("master", corev1.LoadBalancerIngress{Hostname: "lb.example.com"})},
			want: []config.Server{with(master, func(s *config.Server) { s.Address = "lb.example.com:80" })},
		},
		{
			name: "service address: NodePort on nodeHost",
			dc: dc(func(d *config.Discovery) {
				d.Address, d.NodeHost, d.HealthPort = config.AddressService, "node.example.com", "health"
			}),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs: []*corev1.Service{service("master")},
			want: []config.Server{with(master, func(s *config.Server) { s.Address, s.HealthPort = "node.example.com:30080", 30081 })},
		},
		{
			name: "service address: targetPort by the container port's name",
			dc: dc(func(d *config.Discovery) {
				d.Address, d.NodeHost, d.Port, d.HealthPort = config.AddressService, "node.example.com", "http", "health"
			}),
			pods: []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs: []*corev1.Service{func() *corev1.Service {
				s := service("master")
				s.Spec.Ports[0].TargetPort, s.Spec.Ports[1].TargetPort = intstr.FromString("http"), intstr.FromString("health")
				return s
			}()},
			want: []config.Server{with(master, func(s *config.Server) { s.Address, s.HealthPort = "node.example.com:30080", 30081 })},
		},
		{
			name:  "service address: no service for the server",
			dc:    dc(func(d *config.Discovery) { d.Address, d.NodeHost = config.AddressService, "node.example.com" }),
			pods:  []*corev1.Pod{pod("m", "10.0.0.1", role("master")), pod("f", "10.0.0.2", role("failover"))},
			svcs:  []*corev1.Service{service("failover")},
			want:  []config.Server{with(server("failover", "f", "10.0.0.2", "node.example.com:30080"), func(s *config.Server) { s.Backup = true })},
			notes: []string{`server "master": no service labelled tandem.io/role=master`},
		},
		{
			name:  "service address: no load balancer and no nodeHost",
			dc:    dc(func(d *config.Discovery) { d.Address = config.AddressService }),
			pods:  []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs:  []*corev1.Service{service("master")},
			notes: []string{"service ns/svc-master has no load-balancer address and nodeHost is not set"},
		},
		{
			name: "service address: the port is not published",
			dc: dc(func(d *config.Discovery) {
				d.Address, d.NodeHost, d.Port = config.AddressService, "node.example.com", "7000"
			}),
			pods:  []*corev1.Pod{pod("m", "10.0.0.1", role("master"))},
			svcs:  []*corev1.Service{service("master")},
			notes: []string{"service ns/svc-master does not publish port 7000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notes := Servers(tt.dc, tt.healthPort, tt.pods, tt.svcs)
			if len(got) != 0 || len(tt.want) != 0 {
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("servers:\n got %+v\nwant %+v", got, tt.want)
				}
			}
			checkNotes(t, notes, tt.notes)
		})
	}
}

// checkNotes wants one note per substring of want, in order.
func checkNotes(t *testing.T, notes, want []string) {
	t.Helper()
	if len(notes) != len(want) {
		t.Fatalf("notes %q, want %d like %q", notes, len(want), want)
	}
	for i, n := range want {
		if !strings.Contains(notes[i], n) {
			t.Errorf("note %q, want one containing %q", notes[i], n)
		}
	}
}

// TestWatchFailed: a watch that merely ended is not logged, a refusal is
// an error naming the verbs to grant, any other failure a warning.
func TestWatchFailed(t *testing.T) {
	refusedLog = newLimiter(1, time.Minute) // a run before this one's lines
	var buf bytes.Buffer
	d := &Discovery{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r := cache.NewReflector(&cache.ListWatch{}, &corev1.Pod{}, cache.NewStore(cache.MetaNamespaceKeyFunc), 0)
	h := d.watchFailed("sense", "pods", "apps")
	forbidden := apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("RBAC: no"))
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for nothing logged
	}{
		{"watch ended", io.EOF, ""},
		{"expired", apierrors.NewResourceExpired("too old"), ""},
		{"forbidden", forbidden, `level=ERROR msg="discovery: the API refuses the gateway's service account; grant list and watch on pods`},
		{"other", errors.New("connection refused"), `level=WARN msg="discovery: list/watch failed, retrying" group=sense namespace=apps`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			h(context.Background(), r, tc.err)
			if got := buf.String(); tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("logged %q, want %q", got, tc.want)
			}
		})
	}
}
