package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/ops"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// testScale: a second master is refused, as a second replica or as a
// second workload of the role; --force overrides; stateless scales.
func testScale(t *testing.T, ctx context.Context, b *bed) {
	const ns = "sc"
	b.namespace(t, ctx, ns)
	b.deploy(t, ctx, ns, "sense-master", "sense", 1, "sense:1", role("master"), recreate)
	b.deploy(t, ctx, ns, "sense-master-2", "sense", 0, "sense:1", role("master"), recreate, func(d *appsv1.Deployment) {
		d.Spec.Selector.MatchLabels["copy"] = "2"
		d.Spec.Template.Labels["copy"] = "2"
	})
	b.deploy(t, ctx, ns, "web", "web", 1, "web:1")
	b.ready(t, ctx, ns, "sense-master", "web")

	replicas := func(name string) int32 {
		d, err := b.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas
	}
	_, err := b.cli(t, "scale", "sense-master", "2", "-n", ns)
	if !errors.Is(err, ops.ErrSplitBrain) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("scale master to 2: %v, want split brain", err)
	}
	_, err = b.cli(t, "scale", "deployment/sense-master-2", "1", "-n", ns)
	if !errors.Is(err, ops.ErrSplitBrain) || !strings.Contains(err.Error(), "deployment/sense-master has 1") {
		t.Fatalf("a second master workload: %v, want split brain naming the first", err)
	}
	if replicas("sense-master") != 1 || replicas("sense-master-2") != 0 {
		t.Fatal("a refused scale changed replicas")
	}
	if _, err := b.cli(t, "scale", "web", "3", "-n", ns); err != nil {
		t.Fatal(err)
	}
	b.ready(t, ctx, ns, "web")
	if _, err := b.cli(t, "scale", "sense-master", "2", "-n", ns, "--force"); err != nil {
		t.Fatal(err)
	}
	if replicas("sense-master") != 2 {
		t.Fatal("--force did not scale")
	}
	if _, err := b.cli(t, "scale", "sense-master", "1", "-n", ns); err != nil {
		t.Fatal(err)
	}
}

// testUpdate: a schema-migrating Deployment on RollingUpdate is refused
// until the operator agrees to Recreate; then it moves from app:1 to
// app:2 while a watch of its pods proves that no pod of app:2 ever
// existed while one of app:1 did (terminating included), and /status
// through the (stand-in) gateway reports version 2. A failed update stops
// and prints the rollback.
func testUpdate(t *testing.T, ctx context.Context, b *bed) {
	const ns = "up"
	b.namespace(t, ctx, ns)
	b.deploy(t, ctx, ns, "app", "app", 3, "app:1", migrating)
	b.ready(t, ctx, ns, "app")
	// The stand-in gateway reports the version of the ready pods, and
	// fails when two versions answer.
	version := func() string {
		pods, err := b.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
		if err != nil {
			return ""
		}
		vs := map[string]bool{}
		for i := range pods.Items {
			if ops.PodReady(&pods.Items[i]) {
				vs[ops.ImageTag(pods.Items[i].Spec.Containers[0].Image)] = true
			}
		}
		if len(vs) != 1 {
			return ""
		}
		for v := range vs {
			return v
		}
		return ""
	}
	gw := statusServer(t, version)

	log := recordPods(t, ctx, b.cs, ns)
	_, err := b.cli(t, "update", "app", "--image", "app:2", "-n", ns, "--gateway", gw.URL)
	if !errors.Is(err, ops.ErrNotRecreate) {
		t.Fatalf("update on RollingUpdate without --set-recreate: %v, want refused", err)
	}
	if len(log.snapshot()) != 3 {
		t.Fatal("a refused update touched pods")
	}
	out, err := b.cli(t, "update", "app", "--image", "app:2", "-n", ns, "--gateway", gw.URL, "--set-recreate")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"strategy set to Recreate", "no pod left", "/status reports version 2"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	d, err := b.cs.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Image != "app:2" {
		t.Fatalf("after update: strategy %s, replicas %d, image %s", d.Spec.Strategy.Type, *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
	time.Sleep(500 * time.Millisecond) // the watch catches up
	coexist(t, log.snapshot(), map[string]int{"app:1": 3, "app:2": 3})

	// A failure: /status never reports the version asked for.
	log = recordPods(t, ctx, b.cs, ns)
	_, err = b.cli(t, "update", "app", "--image", "app:3", "--version", "3-never", "-n", ns, "--gateway", gw.URL, "--timeout", "3s")
	var ue *ops.UpdateError
	if !errors.As(err, &ue) {
		t.Fatalf("update to a version /status never reports: %v, want an UpdateError", err)
	}
	if !strings.Contains(ue.Rollback, "kubectl tandem update deployment/app --image app:2 -n up") || !strings.Contains(ue.State, "image app:3") {
		t.Errorf("rollback %q, state %q", ue.Rollback, ue.State)
	}
	if _, err := b.cli(t, "update", "app", "--image", "app:2", "-n", ns, "--gateway", gw.URL); err != nil {
		t.Fatalf("the rollback command: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	coexist(t, log.snapshot(), map[string]int{"app:2": 6, "app:3": 3})
}

// coexist fails t when pods of two images existed at once in evs, and
// checks that each image had at least the pods of want (by UID).
func coexist(t *testing.T, evs []podEvent, want map[string]int) {
	t.Helper()
	live := map[string]string{} // uid -> image
	seen := map[string]map[string]bool{}
	for _, e := range evs {
		if e.typ == watch.Deleted {
			delete(live, e.uid)
		} else {
			live[e.uid] = e.image
		}
		if seen[e.image] == nil {
			seen[e.image] = map[string]bool{}
		}
		seen[e.image][e.uid] = true
		imgs := map[string]int{}
		for _, img := range live {
			imgs[img]++
		}
		if len(imgs) > 1 {
			t.Fatalf("%s: pods of two versions exist at once: %v (after %s %s)", e.at.Format("15:04:05.000"), imgs, e.typ, e.name)
		}
	}
	for img, n := range want {
		if len(seen[img]) < n {
			t.Errorf("%d pods of %s seen, want %d or more", len(seen[img]), img, n)
		}
	}
	t.Logf("%d pod events, one version at a time; pods per image: %v", len(evs), func() map[string]int {
		m := map[string]int{}
		for img, uids := range seen {
			m[img] = len(uids)
		}
		return m
	}())
}
