package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestEndpointServers(t *testing.T) {
	yes, no := new(bool), new(bool)
	*yes = true
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := func(name, role, prio string, age int) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", UID: types.UID("uid-" + name),
			Labels: map[string]string{}, CreationTimestamp: metav1.NewTime(t0.Add(-time.Duration(age) * time.Minute))}}
		if role != "" {
			p.Labels["tandem.io/role"] = role
		}
		if prio != "" {
			p.Labels["tandem.io/priority"] = prio
		}
		return p
	}
	// ep is an endpoint: "ready", "notready", "terminating" (still
	// serving), or "nil" (no conditions at all); pod "" for no targetRef.
	ep := func(addr, podName, cond string) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{addr}}
		switch cond {
		case "ready":
			e.Conditions = discoveryv1.EndpointConditions{Ready: yes, Serving: yes, Terminating: no}
		case "notready":
			e.Conditions = discoveryv1.EndpointConditions{Ready: no, Serving: no, Terminating: no}
		case "terminating":
			e.Conditions = discoveryv1.EndpointConditions{Ready: no, Serving: yes, Terminating: yes}
		}
		if podName != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "apps", Name: podName, UID: types.UID("uid-" + podName)}
		}
		return e
	}
	slice := func(name string, ports map[string]int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps"}, Endpoints: eps}
		for n, p := range ports {
			sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{Name: &n, Port: &p})
		}
		return sl
	}
	http := map[string]int32{"http": 8080, "status": 8079}
	dc := &config.Discovery{Service: "sense", Port: "http", RoleKey: "tandem.io/role", PriorityKey: "tandem.io/priority"}
	show := func(ss []config.Server) string {
		var b []string
		for _, s := range ss {
			b = append(b, fmt.Sprintf("%s=%s hp%d p%d b%v %s %s", s.Name, s.Address, s.HealthPort, s.Priority, s.Backup, s.Pod, s.Instance))
		}
		return strings.Join(b, "; ")
	}
	for _, tc := range []struct {
		name   string
		dc     *config.Discovery
		slices []*discoveryv1.EndpointSlice
		pods   []*corev1.Pod
		want   string
		notes  []string // substrings, one per note
	}{
		{
			name:   "role names from the pods, the failover is the backup, a nil condition is ready",
			slices: []*discoveryv1.EndpointSlice{slice("sense-a", http, ep("127.0.0.2", "m-0", "ready"), ep("127.0.0.3", "f-0", "nil"))},
			pods:   []*corev1.Pod{pod("m-0", "master", "", 1), pod("f-0", "failover", "", 1)},
			want:   "failover=127.0.0.3:8080 hp0 p0 btrue apps/f-0 uid-f-0; master=127.0.0.2:8080 hp0 p0 bfalse apps/m-0 uid-m-0",
		},
		{
			name: "not ready and terminating endpoints get no traffic",
			slices: []*discoveryv1.EndpointSlice{slice("sense-a", http,
				ep("127.0.0.2", "m-0", "notready"), ep("127.0.0.3", "f-0", "terminating"), ep("127.0.0.4", "x-0", "ready"))},
			pods: []*corev1.Pod{pod("m-0", "master", "", 1), pod("f-0", "failover", "", 1), pod("x-0", "extra", "", 1)},
			want: "extra=127.0.0.4:8080 hp0 p0 bfalse apps/x-0 uid-x-0",
		},
		{
			name: "without the pod: its name; without a targetRef: the hostname, else the address",
			slices: []*discoveryv1.EndpointSlice{slice("sense-a", http, ep("127.0.0.2", "web-0", "ready"),
				func() discoveryv1.Endpoint {
					e := ep("127.0.0.3", "", "ready")
					h := "db-1"
					e.Hostname = &h
					return e
				}(), ep("127.0.0.4", "", "ready"))},
			want: "127.0.0.4=127.0.0.4:8080 hp0 p0 bfalse  127.0.0.4; db-1=127.0.0.3:8080 hp0 p0 bfalse  127.0.0.3; web-0=127.0.0.2:8080 hp0 p0 bfalse apps/web-0 uid-web-0",
		},
		{
			name:   "priority from the pod; ports by number and health port by name",
			dc:     &config.Discovery{Service: "sense", Port: "9000", HealthPort: "status", RoleKey: "tandem.io/role", PriorityKey: "tandem.io/priority"},
			slices: []*discoveryv1.EndpointSlice{slice("sense-a", http, ep("127.0.0.2", "a-0", "ready"), ep("127.0.0.3", "b-0", "ready"))},
			pods:   []*corev1.Pod{pod("a-0", "a", "2", 1), pod("b-0", "b", "1", 1)},
			want:   "a=127.0.0.2:9000 hp8079 p2 bfalse apps/a-0 uid-a-0; b=127.0.0.3:9000 hp8079 p1 bfalse apps/b-0 uid-b-0",
		},
		{
			name:   "a slice without the named port is left out, said so",
			dc:     &config.Discovery{Service: "sense", Port: "grpc", RoleKey: "tandem.io/role"},
			slices: []*discoveryv1.EndpointSlice{slice("sense-a", http, ep("127.0.0.2", "a-0", "ready"))},
			want:   "",
			notes:  []string{`EndpointSlice apps/sense-a: no port named "grpc"`},
		},
		{
			name: "two pods of one role: the oldest serves; an endpoint in two slices counts once",
			slices: []*discoveryv1.EndpointSlice{
				slice("sense-a", http, ep("127.0.0.2", "m-new", "ready"), ep("127.0.0.3", "m-old", "ready")),
				slice("sense-b", http, ep("127.0.0.3", "m-old", "ready")),
			},
			pods:  []*corev1.Pod{pod("m-new", "master", "", 1), pod("m-old", "master", "", 5)},
			want:  "master=127.0.0.3:8080 hp0 p0 bfalse apps/m-old uid-m-old",
			notes: []string{`endpoints apps/m-old (127.0.0.3:8080) and apps/m-new (127.0.0.2:8080) are both "master"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dc
			if d == nil {
				d = dc
			}
			got, notes := EndpointServers(d, 0, tc.slices, tc.pods)
			if s := show(got); s != tc.want {
				t.Errorf("servers:\n got %s\nwant %s", s, tc.want)
			}
			checkNotes(t, notes, tc.notes)
		})
	}
}
