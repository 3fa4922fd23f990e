package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Snapshot is the servers of every discovered group, by group name. A
// published snapshot is never mutated.
type Snapshot map[string][]config.Server

// Discovery watches the pods (and, for address: service, the Services; for
// kubernetes.service, the Service's EndpointSlices) of every group that
// takes its servers from the cluster, and emits a new
// Snapshot whenever the servers change.
type Discovery struct {
	client kubernetes.Interface
	groups []config.Group // only the discovered ones
	defNS  string
	emit   func(Snapshot)
	log    *slog.Logger

	mu     sync.Mutex
	last   Snapshot
	synced bool
	pods   map[string]cache.Indexer // by group
	svcs   map[string]cache.Indexer
	slices map[string]cache.Indexer // groups with kubernetes.service
	// hasSynced says, by group, whether each of its informers has listed:
	// a group is published once its own have, whatever the others'.
	hasSynced map[string][]cache.InformerSynced
}

// NewDiscovery returns a discovery for cfg's discovered groups; emit
// receives every changed snapshot, from one goroutine, in order.
func NewDiscovery(client kubernetes.Interface, cfg *config.Config, emit func(Snapshot), log *slog.Logger) *Discovery {
	d := &Discovery{client: client, defNS: Namespace(cfg.Kubernetes), emit: emit, log: log,
		pods: map[string]cache.Indexer{}, svcs: map[string]cache.Indexer{}, slices: map[string]cache.Indexer{},
		hasSynced: map[string][]cache.InformerSynced{}}
	for _, g := range cfg.Groups {
		if g.Kubernetes != nil {
			d.groups = append(d.groups, g)
		}
	}
	return d
}

// Synced reports whether every informer has listed once: until then a
// group whose informers have not (a list the API refuses, say) has no
// servers, and the others are served.
func (d *Discovery) Synced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

// watchFailed is every informer's watch error handler: client-go only
// logs a failed list through klog and retries forever, so a Role lacking a
// verb would leave the gateway unready with nothing in its own log. It
// logs through slog (an error when the API refuses, as no retry will
// help) and leaves the retry to client-go. group names the groups sharing
// the informer, comma-separated.
func (d *Discovery) watchFailed(group, resource, ns string) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, r *cache.Reflector, err error) {
		// client-go's own handler, with the error as it came: it tells a
		// watch that merely ended (EOF, expired) from a failure by identity.
		cache.DefaultWatchErrorHandler(ctx, r, err)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return // a watch ends now and then; the reflector resumes it
		}
		werr := fmt.Errorf("discovery: group %s: list/watch %s in namespace %s: %w", group, resource, ns, err)
		if !refused(d.log, "discovery", werr, "list and watch on "+resource, "group", group, "namespace", ns) {
			d.log.Warn("discovery: list/watch failed, retrying", "group", group, "namespace", ns, "error", werr)
		}
	}
}

// Current returns the latest snapshot (nil before the first).
func (d *Discovery) Current() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// Run watches until ctx ends. Each group's informers are filtered by its
// namespace and label selector, so the gateway holds only its own pods;
// groups that ask for the same resource in the same namespace under the
// same selector (two groups over one set of pods, or two Services' groups,
// which all read the pods carrying the role label) share one informer and
// its store: one list and one watch on the API, one copy in memory.
func (d *Discovery) Run(ctx context.Context) error {
	if len(d.groups) == 0 {
		d.mu.Lock()
		d.synced = true
		d.mu.Unlock()
		<-ctx.Done()
		return nil
	}
	kick := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(kick) },
		UpdateFunc: func(any, any) { poke(kick) },
		DeleteFunc: func(any) { poke(kick) },
	}
	sources := newSources(d.client)
	for _, g := range d.groups {
		dc := g.Kubernetes
		ns := dc.Namespace
		if ns == "" {
			ns = d.defNS
		}
		// Pods of the selector; with a Service, the pods that carry the
		// role label, for their names (the slices do not hold labels).
		podSelector := dc.Selector
		if dc.Service != "" {
			podSelector = dc.RoleKey
		}
		d.pods[g.Name] = sources.use(d, g.Name, "pods", ns, podSelector, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Core().V1().Pods().Informer()
		})
		if dc.Address == config.AddressService {
			d.svcs[g.Name] = sources.use(d, g.Name, "services", ns, podSelector, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Core().V1().Services().Informer()
			})
		}
		if dc.Service != "" {
			// Only the Service's own slices, by the label their controller sets.
			d.slices[g.Name] = sources.use(d, g.Name, "endpointslices.discovery.k8s.io", ns, discoveryv1.LabelServiceName+"="+dc.Service,
				func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
					return f.Discovery().V1().EndpointSlices().Informer()
				})
		}
	}
	if err := sources.start(ctx, d, notify); err != nil {
		return err
	}
	// Until every group has listed, look every 100 ms (as
	// cache.WaitForCacheSync would) and publish the groups that have: one
	// group's refused list must not leave the others without servers.
	var waitSync <-chan time.Time
	if !d.publish() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		waitSync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-waitSync:
			if d.publish() {
				waitSync = nil
			}
		case <-kick:
			// Coalesce a burst (a rollout touches several pods at once).
			t := time.NewTimer(20 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			d.publish()
		}
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// publish computes the snapshot of the groups whose informers have listed
// and emits it when it changed; it reports whether every group has (and
// from then on, Synced does).
func (d *Discovery) publish() bool {
	snap := Snapshot{}
	all := true
	for _, g := range d.groups {
		if !groupSynced(d.hasSynced[g.Name]) {
			all = false
			continue
		}
		var pods []*corev1.Pod
		for _, o := range d.pods[g.Name].List() {
			pods = append(pods, o.(*corev1.Pod))
		}
		var svcs []*corev1.Service
		if ix := d.svcs[g.Name]; ix != nil {
			for _, o := range ix.List() {
				svcs = append(svcs, o.(*corev1.Service))
			}
		}
		var servers []config.Server
		var notes []string
		if ix := d.slices[g.Name]; ix != nil {
			var slices []*discoveryv1.EndpointSlice
			for _, o := range ix.List() {
				slices = append(slices, o.(*discoveryv1.EndpointSlice))
			}
			servers, notes = EndpointServers(g.Kubernetes, g.Health.Port, slices, pods)
		} else {
			servers, notes = Servers(g.Kubernetes, g.Health.Port, pods, svcs)
		}
		for _, n := range notes {
			d.log.Warn("discovery: "+n, "group", g.Name)
		}
		snap[g.Name] = servers
	}
	d.mu.Lock()
	// Before any group has listed there is nothing to say.
	same := reflect.DeepEqual(snap, d.last) || len(snap) == 0 && d.last == nil
	if !same {
		d.last = snap
	}
	d.mu.Unlock()
	if !same {
		d.emit(snap)
	}
	if all {
		// After the emit: Synced means the servers of every group are out.
		d.mu.Lock()
		d.synced = true
		d.mu.Unlock()
	}
	return all
}

func groupSynced(fs []cache.InformerSynced) bool {
	for _, f := range fs {
		if !f() {
			return false
		}
	}
	return true
}

// Servers turns a group's pods into its servers: a pure function, tested
// on its own. A pod serves only when it is running, ready and not
// terminating; its name is its role (dc.RoleKey), else its Deployment's or
// StatefulSet's, so that history, pins and manual switches keep meaning
// something across restarts. When two pods claim one name the oldest
// serves and a note says so. healthPort is the group's health.port.
func Servers(dc *config.Discovery, healthPort int, pods []*corev1.Pod, svcs []*corev1.Service) ([]config.Server, []string) {
	var notes []string
	sort.Slice(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	byName := map[string]config.Server{}
	for _, p := range pods {
		if !serving(p) {
			continue
		}
		name := serverName(p, dc.RoleKey)
		if prev, dup := byName[name]; dup {
			notes = append(notes, fmt.Sprintf("pods %s and %s are both %q: %s serves, %s gets no traffic", prev.Pod, p.Namespace+"/"+p.Name, name, prev.Pod, p.Name))
			continue
		}
		port, hp, err := trafficPorts(dc, healthPort, func(ref string) (int, error) { return containerPort(p, ref) })
		if err != nil {
			notes = append(notes, fmt.Sprintf("pod %s/%s: %v", p.Namespace, p.Name, err))
			continue
		}
		s := config.Server{Name: name, Address: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), HealthPort: hp,
			Instance: string(p.UID), Pod: p.Namespace + "/" + p.Name, PodIP: p.Status.PodIP, PodPort: port}
		if dc.Address == config.AddressService {
			addr, hport, err := serviceAddress(svcs, dc, name, port, hp)
			if err != nil {
				notes = append(notes, fmt.Sprintf("server %q: %v", name, err))
				continue
			}
			s.Address, s.HealthPort = addr, hport
		}
		s.Priority, s.Backup = priority(p, dc.PriorityKey, name)
		byName[name] = s
	}
	return byNameSorted(byName), notes
}

// byNameSorted lists a source's servers in name order: a snapshot that does
// not change with the order the informer lists objects in.
func byNameSorted(byName map[string]config.Server) []config.Server {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]config.Server, 0, len(names))
	for _, n := range names {
		out = append(out, byName[n])
	}
	return out
}

// serving reports whether a pod may get new traffic.
func serving(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serverName is the pod's stable name: its role label, else its
// StatefulSet pod name (stable by design), else its Deployment's name (the
// ReplicaSet's without the template hash), else the pod's own.
func serverName(p *corev1.Pod, roleKey string) string {
	if r := p.Labels[roleKey]; r != "" {
		return r
	}
	if c := metav1.GetControllerOf(p); c != nil {
		switch c.Kind {
		case "StatefulSet":
			return p.Name
		case "ReplicaSet":
			if h := p.Labels["pod-template-hash"]; h != "" {
				return strings.TrimSuffix(c.Name, "-"+h)
			}
			return c.Name
		}
	}
	return p.Name
}

// priority reads the priority label or annotation; without one a
// "failover" role is the backup and anything else priority 0.
func priority(p *corev1.Pod, key, name string) (int, bool) {
	if p != nil { // an endpoint without its pod has no labels to say
		v, ok := p.Labels[key]
		if !ok {
			v, ok = p.Annotations[key]
		}
		if ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n, false
			}
		}
	}
	return 0, name == "failover" || name == "backup"
}

// trafficPorts resolves a discovered server's traffic port (dc.Port) and
// check port (dc.HealthPort, else healthPort) with resolve, which knows the
// source's port names: a pod's container ports, a slice's ports.
func trafficPorts(dc *config.Discovery, healthPort int, resolve func(string) (int, error)) (int, int, error) {
	port, err := resolve(dc.Port)
	if err != nil {
		return 0, 0, err
	}
	hp := healthPort
	if dc.HealthPort != "" {
		if hp, err = resolve(dc.HealthPort); err != nil {
			return 0, 0, fmt.Errorf("health port: %w", err)
		}
	}
	return port, hp, nil
}

// containerPort resolves a port number or a container port's name.
func containerPort(p *corev1.Pod, ref string) (int, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		return n, nil
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == ref {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q", ref)
}

// serviceAddress finds the Service that publishes server name (its
// RoleKey label) and the address it is reached at from outside the
// cluster: a LoadBalancer's ingress, else NodeHost and the node port.
func serviceAddress(svcs []*corev1.Service, dc *config.Discovery, name string, port, healthPort int) (string, int, error) {
	for _, s := range svcs {
		if s.Labels[dc.RoleKey] != name {
			continue
		}
		host := dc.NodeHost
		lb := false
		for _, in := range s.Status.LoadBalancer.Ingress {
			if h := cmp.Or(in.IP, in.Hostname); h != "" {
				host, lb = h, true
				break
			}
		}
		if host == "" {
			return "", 0, fmt.Errorf("service %s/%s has no load-balancer address and nodeHost is not set", s.Namespace, s.Name)
		}
		// A Service port publishes the pod's port by number, by the
		// container port's name, or (no targetPort) by the same number.
		published := func(target int, ref string) (int, bool) {
			for _, sp := range s.Spec.Ports {
				tp := sp.TargetPort
				named := tp.Type == intstr.String && tp.StrVal != ""
				if named && tp.StrVal == ref || !named && tp.IntValue() == target || tp.IntValue() == 0 && !named && int(sp.Port) == target {
					if lb {
						return int(sp.Port), true
					}
					return int(sp.NodePort), sp.NodePort != 0
				}
			}
			return 0, false
		}
		tp, ok := published(port, dc.Port)
		if !ok {
			return "", 0, fmt.Errorf("service %s/%s does not publish port %d", s.Namespace, s.Name, port)
		}
		hp := 0
		if healthPort != 0 && healthPort != port {
			if hp, ok = published(healthPort, dc.HealthPort); !ok {
				return "", 0, fmt.Errorf("service %s/%s does not publish the health port %d", s.Namespace, s.Name, healthPort)
			}
		}
		return net.JoinHostPort(host, strconv.Itoa(tp)), hp, nil
	}
	return "", 0, fmt.Errorf("no service labelled %s=%s", dc.RoleKey, name)
}
