package kubetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCluster shares one API server and etcd across its subtests.
func TestCluster(t *testing.T) {
	began := time.Now()
	c := Start(t)
	t.Logf("etcd and kube-apiserver ready in %s at %s", time.Since(began).Round(time.Millisecond), c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("Version", func(t *testing.T) {
		v, err := c.Client().Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		// scripts/testbed stamps the release into the binaries.
		if v.Major != "1" || !strings.HasPrefix(v.GitVersion, "v1.") {
			t.Fatalf("server version %+v, want a v1.x release", v)
		}
	})

	t.Run("Lease", func(t *testing.T) {
		holder := "replica-a"
		secs := int32(15)
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "tandem-leader", Namespace: "default"},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs},
		}
		if _, err := c.Client().CoordinationV1().Leases("default").Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := c.Client().CoordinationV1().Leases("default").Get(ctx, "tandem-leader", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.HolderIdentity == nil || *got.Spec.HolderIdentity != holder {
			t.Fatalf("holder %v, want %s", got.Spec.HolderIdentity, holder)
		}
	})

	// Informers need etcd's RequestWatchProgress (etcd 3.6 has it; Debian's
	// 3.4 fails here).
	t.Run("Informer", func(t *testing.T) {
		f := informers.NewSharedInformerFactoryWithOptions(c.Client(), 0, informers.WithNamespace("default"))
		inf := f.Core().V1().ConfigMaps().Informer()
		events := make(chan string, 16)
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if cm := obj.(*corev1.ConfigMap); cm.Name == "routes" {
					events <- "add " + cm.Data["v"]
				}
			},
			UpdateFunc: func(_, obj any) {
				if cm := obj.(*corev1.ConfigMap); cm.Name == "routes" {
					events <- "update " + cm.Data["v"]
				}
			},
		})
		stop := make(chan struct{})
		defer close(stop)
		f.Start(stop)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Fatal("informer cache did not sync")
		}
		cms := c.Client().CoreV1().ConfigMaps("default")
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "routes"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want(t, events, "add 1")
		cm.Data["v"] = "2"
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want(t, events, "update 2")
	})

	t.Run("Kubectl", func(t *testing.T) {
		kubectl := Kubectl(t)
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "seen-by-kubectl", Namespace: "kube-system"}}
		if _, err := c.Client().CoordinationV1().Leases("kube-system").Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig(), "get", "leases", "-A").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get leases -A: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "seen-by-kubectl") {
			t.Fatalf("kubectl get leases -A does not list seen-by-kubectl:\n%s", out)
		}
	})

	t.Run("ServiceAccountRBAC", func(t *testing.T) {
		const ns, sa = "tandem-rbac", "gateway"
		path := c.KubeconfigFor(t, ns, sa)
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list pods before any grant: %v, want 403 Forbidden", err)
		}
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
		}
		if _, err := c.Client().RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "gateway-pod-reader", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
		}
		if _, err := c.Client().RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The RBAC authorizer reads bindings from an informer: a moment.
		eventually(t, ctx, func() error {
			_, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		})
		// Only what the Role grants.
		if _, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list pods in another namespace: %v, want 403 Forbidden", err)
		}
		if _, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list configmaps: %v, want 403 Forbidden", err)
		}
	})

	t.Run("Relay", func(t *testing.T) {
		r := NewRelay(t, strings.TrimPrefix(c.URL(), "https://"))
		cfg := ConfigVia(c.Config(), r.Addr())
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		list := func(ctx context.Context) error {
			_, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err
		}
		if err := list(ctx); err != nil {
			t.Fatalf("through the relay: %v", err)
		}
		r.Cut()
		// client-go retries a GET on a reset connection: bound the wait.
		cutCtx, cutCancel := context.WithTimeout(ctx, time.Second)
		defer cutCancel()
		if err := list(cutCtx); err == nil {
			t.Fatal("a request through a cut relay succeeded")
		} else {
			t.Logf("cut: %v", err)
		}
		r.Restore()
		if err := list(ctx); err != nil {
			t.Fatalf("after Restore: %v", err)
		}
		// The kubeconfig form, by kubectl: the certificate still verifies.
		out, err := exec.CommandContext(ctx, Kubectl(t), "--kubeconfig", c.KubeconfigVia(t, r.Addr()), "get", "namespace", "default", "-o", "name").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "namespace/default" {
			t.Fatalf("kubectl through the relay: %v\n%s", err, out)
		}
	})
}

// TestWorkloads runs the whole control plane with fake nodes: a Deployment's
// pods are scheduled and become Running.
func TestWorkloads(t *testing.T) {
	began := time.Now()
	c := Start(t, WithControllerManager(), WithScheduler(), WithKWOK(2))
	t.Logf("control plane with 2 kwok nodes ready in %s", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
			},
		},
	}
	if _, err := c.Client().AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, func() error {
		pods, err := c.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
				running++
			}
		}
		if running != int(replicas) {
			return fmt.Errorf("%d of %d pods Running with an IP on a kwok node", running, replicas)
		}
		return nil
	})
	eventually(t, ctx, func() error {
		got, err := c.Client().AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ReadyReplicas != replicas {
			return fmt.Errorf("%d ready replicas, want %d", got.Status.ReadyReplicas, replicas)
		}
		return nil
	})
}

// TestRelayCut: the relay's own semantics, against an echo server.
func TestRelayCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	r := NewRelay(t, ln.Addr().String())
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if string(b) != "ping" {
			return fmt.Errorf("echo %q", b)
		}
		return nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	open := dial()
	if err := echo(open); err != nil {
		t.Fatalf("through the relay: %v", err)
	}
	r.Cut()
	if err := echo(open); err == nil {
		t.Fatal("an open connection still relays after Cut")
	}
	if err := echo(dial()); err == nil {
		t.Fatal("a new connection relays while cut")
	}
	r.Restore()
	if err := echo(dial()); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
}

func want(t *testing.T, events <-chan string, w string) {
	t.Helper()
	select {
	case got := <-events:
		if got != w {
			t.Fatalf("event %q, want %q", got, w)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %q event within 10s", w)
	}
}

// eventually retries f until it succeeds or ctx ends.
func eventually(t *testing.T, ctx context.Context, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still failing: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
