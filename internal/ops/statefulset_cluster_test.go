package ops_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/ops"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testStatefulSet: restart and update work on a StatefulSet too; the
// update scales it to zero itself (a StatefulSet has no Recreate), so its
// two versions never coexist either.
func testStatefulSet(t *testing.T, ctx context.Context, b *bed) {
	const ns = "ss"
	b.namespace(t, ctx, ns)
	replicas := int32(2)
	l := map[string]string{"app": "db"}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: l}, ServiceName: "db",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}}},
		},
	}
	if _, err := b.cs.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b.ready(t, ctx, ns, "statefulset/db")
	log := recordPods(t, ctx, b.cs, ns)
	out, err := b.cli(t, "restart", "sts/db", "-n", ns, "--timeout", "60s")
	if err != nil || !strings.Contains(out, "statefulset/db: ready after") {
		t.Fatalf("restart: %v", err)
	}
	uids := map[string]bool{}
	for _, e := range log.snapshot() {
		uids[e.uid] = true
	}
	if len(uids) < 4 {
		t.Errorf("restart replaced %d pods of 2", len(uids)-2)
	}
	log = recordPods(t, ctx, b.cs, ns)
	if _, err := b.cli(t, "update", "statefulset/db", "--image", "db:2", "-n", ns, "--timeout", "60s"); err != nil {
		t.Fatal(err)
	}
	b.ready(t, ctx, ns, "statefulset/db")
	coexist(t, log.snapshot(), map[string]int{"db:1": 2, "db:2": 2})
	if c, err := ops.Resolve(ctx, b.cs, ns, "db"); err != nil || c.Kind != ops.KindStatefulSet || c.Template.Spec.Containers[0].Image != "db:2" {
		t.Fatalf("after update: %+v %v", c, err)
	}
}
