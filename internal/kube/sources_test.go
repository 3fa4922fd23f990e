package kube

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestDiscoverySharesInformers: groups asking for one resource in one
// namespace under one label selector (written in any order) share one
// informer, so the API sees one list and one watch for them; each group
// still reads its servers from the shared store. Groups of one Service's
// EndpointSlices share the slices and the role-labelled pods.
func TestDiscoverySharesInformers(t *testing.T) {
	labelled := func(name, ip, app, r string) *corev1.Pod {
		return pod(name, ip, func(p *corev1.Pod) {
			p.Labels["app"], p.Labels["tier"], p.Labels[roleKey] = app, "web", r
		})
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "sense-abc", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "sense"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.9"},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "sense-m"}}},
	}
	client := fake.NewClientset(labelled("sense-m", "10.0.0.1", "sense", "master"), labelled("other-m", "10.0.0.2", "other", "master"), slice)
	disc := func(mod func(*config.Discovery)) *config.Discovery {
		d := &config.Discovery{Namespace: "ns", Port: "http", Address: config.AddressPod, RoleKey: roleKey, PriorityKey: priorityKey}
		mod(d)
		return d
	}
	cfg := &config.Config{Kubernetes: &config.Kubernetes{Namespace: "ns"}, Groups: []config.Group{
		{Name: "a", Kubernetes: disc(func(d *config.Discovery) { d.Selector = "app=sense,tier=web" })},
		{Name: "b", Kubernetes: disc(func(d *config.Discovery) { d.Selector = "tier=web,app=sense" })},
		{Name: "c", Kubernetes: disc(func(d *config.Discovery) { d.Selector = "app=other" })},
		{Name: "s1", Kubernetes: disc(func(d *config.Discovery) { d.Service = "sense" })},
		{Name: "s2", Kubernetes: disc(func(d *config.Discovery) { d.Service = "sense" })},
		{Name: "lb", Kubernetes: disc(func(d *config.Discovery) { d.Selector = "app=sense,tier=web"; d.Address = config.AddressService })},
	}}
	d := NewDiscovery(client, cfg, func(Snapshot) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for end := time.Now().Add(10 * time.Second); !d.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the discovery did not sync within 10 s")
		}
	}
	// Every list and watch the informers sent, as "verb resource selector".
	var calls []string
	for _, a := range client.Actions() {
		var sel string
		switch a := a.(type) {
		case k8stesting.ListAction:
			sel = a.GetListRestrictions().Labels.String()
		case k8stesting.WatchAction:
			sel = a.GetWatchRestrictions().Labels.String()
		default:
			continue
		}
		calls = append(calls, a.GetVerb()+" "+a.GetResource().Resource+" "+sel)
	}
	sort.Strings(calls)
	want := []string{
		"list endpointslices kubernetes.io/service-name=sense",
		"list pods app=other",
		"list pods app=sense,tier=web",
		"list pods tandem.io/role",
		"list services app=sense,tier=web",
		"watch endpointslices kubernetes.io/service-name=sense",
		"watch pods app=other",
		"watch pods app=sense,tier=web",
		"watch pods tandem.io/role",
		"watch services app=sense,tier=web",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("the API was asked:\n%s\nwant one list and one watch per resource, namespace and selector:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	names := func(g string) string {
		var out []string
		for _, s := range d.Current()[g] {
			out = append(out, s.Name+"="+s.Address)
		}
		return strings.Join(out, " ")
	}
	for g, want := range map[string]string{"a": "master=10.0.0.1:8080", "b": "master=10.0.0.1:8080", "c": "master=10.0.0.2:8080",
		"s1": "master=10.0.0.9:8080", "s2": "master=10.0.0.9:8080", "lb": ""} {
		if got := names(g); got != want {
			t.Errorf("group %s: servers %q, want %q", g, got, want)
		}
	}
}
