package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/cli"
	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/kubetest"
	"github.com/tandemproxy/tandem/internal/ops"
	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// TestOnCluster proves each command against a real control plane:
// kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok
// with two nodes in two zones (kwok-node-0 in zone-a, kwok-node-1 in
// zone-b). Each subtest has its own namespace.
func TestOnCluster(t *testing.T) {
	began := time.Now()
	c := kubetest.Start(t, kubetest.WithControllerManager(), kubetest.WithScheduler(), kubetest.WithKWOK(2))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := c.SetZones(ctx, "zone-a", "zone-b"); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane with 2 kwok nodes in 2 zones ready in %s", time.Since(began).Round(time.Millisecond))
	b := &bed{c: c, cs: c.Client()}
	t.Run("Events", func(t *testing.T) { testEvents(t, ctx, b) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, ctx, b) })
	t.Run("RestartThroughGateway", func(t *testing.T) { testRestartThroughGateway(t, ctx, b) })
	t.Run("Scale", func(t *testing.T) { testScale(t, ctx, b) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, ctx, b) })
	t.Run("StatefulSet", func(t *testing.T) { testStatefulSet(t, ctx, b) })
	t.Run("Doctor", func(t *testing.T) { testDoctor(t, ctx, b) })
	t.Run("Coordination", func(t *testing.T) { testCoordination(t, ctx, b) })
}

type bed struct {
	c  *kubetest.Cluster
	cs kubernetes.Interface
}

// cli runs the CLI as kubectl-tandem against the test bed and returns
// what it wrote on stdout.
func (b *bed) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return b.cliContext(t, context.Background(), args...)
}

// cliContext is cli with a context, which ends a --watch.
func (b *bed) cliContext(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	root := cli.NewRoot("kubectl-tandem")
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append(args, "--kubeconfig", b.c.Kubeconfig()))
	err := root.ExecuteContext(ctx)
	t.Logf("kubectl tandem %s (exit %d):\n%s%s%v", strings.Join(args, " "), cli.ExitCode(err), out.String(), errOut.String(), errOrEmpty(err))
	return out.String(), err
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (b *bed) namespace(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, func() error {
		_, err := b.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

type opt func(*appsv1.Deployment)

func onNode(n string) opt {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": n}
	}
}

func recreate(d *appsv1.Deployment) {
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
}

func probed(d *appsv1.Deployment) {
	for i := range d.Spec.Template.Spec.Containers {
		d.Spec.Template.Spec.Containers[i].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/status", Port: intstr.FromInt32(8080)}}}
	}
}

func migrating(d *appsv1.Deployment) {
	d.Labels = map[string]string{ops.MigratesSchema: "true"}
}

// role makes the Deployment one instance of the pair app.
func role(r string) opt {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Labels[ops.LabelRole] = r
		d.Spec.Selector.MatchLabels[ops.LabelRole] = r
	}
}

func (b *bed) deploy(t *testing.T, ctx context.Context, ns, name, app string, replicas int32, image string, opts ...opt) {
	t.Helper()
	l := map[string]string{"app": app}
	sel := map[string]string{"app": app}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	if _, err := b.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// ready waits until the Deployment's pods are all Running and Ready.
func (b *bed) ready(t *testing.T, ctx context.Context, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		comp, err := ops.Resolve(ctx, b.cs, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, func() error {
			pods, err := ops.Pods(ctx, b.cs, comp)
			if err != nil {
				return err
			}
			n := 0
			for i := range pods {
				if ops.PodReady(&pods[i]) {
					n++
				}
			}
			if int32(n) != comp.Replicas || len(pods) != n {
				return fmt.Errorf("%s: %d of %d pods ready (%d pods)", name, n, comp.Replicas, len(pods))
			}
			return nil
		})
	}
}

// eventually retries f until it succeeds or ctx ends.
func eventually(t *testing.T, ctx context.Context, f func() error) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-tctx.Done():
			t.Fatalf("still failing: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podLog records every pod event of a namespace, from a watch started
// before the command under test.
type podLog struct {
	mu     sync.Mutex
	events []podEvent
}

type podEvent struct {
	at       time.Time
	typ      watch.EventType
	name     string
	uid      string
	role     string
	image    string
	ready    bool
	deleting bool
}

func recordPods(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) *podLog {
	t.Helper()
	l := &podLog{}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	note := func(typ watch.EventType, p *corev1.Pod) {
		e := podEvent{at: time.Now(), typ: typ, name: p.Name, uid: string(p.UID), role: p.Labels[ops.LabelRole],
			image: p.Spec.Containers[0].Image, ready: ops.PodReady(p), deleting: p.DeletionTimestamp != nil}
		l.mu.Lock()
		l.events = append(l.events, e)
		l.mu.Unlock()
	}
	for i := range list.Items {
		note(watch.Added, &list.Items[i])
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				note(ev.Type, p)
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return l
}

func (l *podLog) snapshot() []podEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]podEvent(nil), l.events...)
}

// coordination writes the objects of a gateway's coordination the way
// internal/kube does (the JSON shapes of its decision and replicaView).
type coordination struct {
	cs kubernetes.Interface
	ns string
}

func (c coordination) write(ctx context.Context, decisions map[string]kube.Decision, views map[string]map[string]any, leaderRenewed time.Time) error {
	data := map[string]string{}
	for g, d := range decisions {
		b, _ := json.Marshal(d)
		data[g] = string(b)
	}
	cms := c.cs.CoreV1().ConfigMaps(c.ns)
	cm, err := cms.Get(ctx, "tandem-decisions", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tandem-decisions",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tandem"}}, Data: data}, metav1.CreateOptions{})
	case err == nil:
		cm.Data = data
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}
	leader := ""
	for id := range views {
		if leader == "" || id < leader {
			leader = id
		}
	}
	if err := c.lease(ctx, "tandem-leader", leader, 15, leaderRenewed, nil, nil); err != nil {
		return err
	}
	for id, v := range views {
		b, _ := json.Marshal(v)
		if err := c.lease(ctx, "tandem-replica-"+id, id, 5, time.Now(), map[string]string{"tandem.io/replica-of": "tandem"},
			map[string]string{"tandem.io/view": string(b)}); err != nil {
			return err
		}
	}
	return nil
}

func (c coordination) lease(ctx context.Context, name, holder string, secs int32, renewed time.Time, labels, ann map[string]string) error {
	ls := c.cs.CoordinationV1().Leases(c.ns)
	rt := metav1.NewMicroTime(renewed)
	spec := coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &rt}
	l, err := ls.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = ls.Create(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: ann}, Spec: spec}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec, l.Annotations = spec, ann
	_, err = ls.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// view is one replica's view of a group, as internal/kube publishes it:
// each server up or down since a minute ago, or since[server].
func view(group string, ack uint64, up map[string]bool, since ...map[string]time.Time) map[string]any {
	servers := map[string]any{}
	for s, u := range up {
		at := time.Now().Add(-time.Minute)
		if len(since) > 0 && !since[0][s].IsZero() {
			at = since[0][s]
		}
		servers[s] = map[string]any{"up": u, "since": at}
	}
	return map[string]any{"groups": map[string]any{group: map[string]any{"ack": ack, "servers": servers}}}
}

// statusServer is an app's /status through a stand-in gateway: it
// answers with what version() says ("" for 503).
func statusServer(t *testing.T, version func() string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version()
		if r.URL.Path != "/status" || v == "" {
			http.Error(w, "no server", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"version":%q}`, v)
	}))
	t.Cleanup(s.Close)
	return s
}
