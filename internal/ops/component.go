// Package ops is the logic of tandem's operations CLI (`tandem events`,
// `restart`, `scale`, `update`, `doctor` and the coordination commands):
// the runbook of a master/failover deployment turned into tooling that is
// safer than the manual steps. It talks to the cluster through an injected
// clientset and acts on workloads and pods only: nothing in it touches a
// Node (see TestNoNodeWrites).
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Labels and annotations the operations read on workloads and pods.
const (
	// LabelRole names a server of a master/failover pair (discovery's
	// default role key): a component whose pod template carries it is one
	// instance of a pair and must never run more than one pod.
	LabelRole = "tandem.io/role"
	// LabelPair groups the instances of one pair when set; otherwise
	// app.kubernetes.io/name, else app (see PairKey).
	LabelPair = "tandem.io/group"
	// MigratesSchema marks a component that migrates the SQL schema on
	// start, as a label or an annotation on the Deployment or StatefulSet
	// (value "true"): two versions of it must never run at once.
	MigratesSchema = "tandem.io/migrates-schema"
	// RestartedAt is the pod-template annotation `kubectl rollout restart` sets.
	RestartedAt = "kubectl.kubernetes.io/restartedAt"
	// ZoneLabel is the well-known zone label of a Node.
	ZoneLabel = "topology.kubernetes.io/zone"
)

// Kinds of component.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// ErrNotFound means no Deployment or StatefulSet has the name.
var ErrNotFound = errors.New("no such component")

// Component is a Deployment or a StatefulSet and the pods it owns.
type Component struct {
	Kind        string
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	Selector    labels.Selector
	Template    corev1.PodTemplateSpec
	Replicas    int32
	// Strategy: Recreate or RollingUpdate (Deployment), RollingUpdate or
	// OnDelete (StatefulSet).
	Strategy string
}

// Ref is how kubectl names it: deployment/NAME.
func (c Component) Ref() string { return strings.ToLower(c.Kind) + "/" + c.Name }

// Role is the template's tandem.io/role ("" for a stateless component).
func (c Component) Role() string { return c.Template.Labels[LabelRole] }

// Migrates reports whether the component is marked as migrating the schema.
func (c Component) Migrates() bool {
	return c.Labels[MigratesSchema] == "true" || c.Annotations[MigratesSchema] == "true"
}

// PairKey is what groups the instances of a master/failover pair: the
// tandem.io/group label, else app.kubernetes.io/name, else app.
func PairKey(l map[string]string) string {
	for _, k := range pairLabels {
		if v := l[k]; v != "" {
			return v
		}
	}
	return ""
}

var pairLabels = []string{LabelPair, "app.kubernetes.io/name", "app"}

func fromDeployment(d *appsv1.Deployment) (Component, error) {
	return newComponent(KindDeployment, d.ObjectMeta, d.Spec.Selector, d.Spec.Template, d.Spec.Replicas,
		string(d.Spec.Strategy.Type), string(appsv1.RollingUpdateDeploymentStrategyType))
}

func fromStatefulSet(s *appsv1.StatefulSet) (Component, error) {
	return newComponent(KindStatefulSet, s.ObjectMeta, s.Spec.Selector, s.Spec.Template, s.Spec.Replicas,
		string(s.Spec.UpdateStrategy.Type), string(appsv1.RollingUpdateStatefulSetStrategyType))
}

// newComponent is what a Deployment and a StatefulSet have in common:
// replicas default to 1 and the strategy to the kind's rolling update.
func newComponent(kind string, m metav1.ObjectMeta, selector *metav1.LabelSelector, tmpl corev1.PodTemplateSpec,
	replicas *int32, strategy, defStrategy string) (Component, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return Component{}, fmt.Errorf("%s/%s: selector: %w", strings.ToLower(kind), m.Name, err)
	}
	c := Component{Kind: kind, Namespace: m.Namespace, Name: m.Name, Labels: m.Labels, Annotations: m.Annotations,
		Selector: sel, Template: tmpl, Replicas: 1, Strategy: strategy}
	if replicas != nil {
		c.Replicas = *replicas
	}
	if c.Strategy == "" {
		c.Strategy = defStrategy
	}
	return c, nil
}

// Resolve finds the component arg names: deployment/NAME, statefulset/NAME
// (deploy, sts and plurals too), or NAME, looked up as a Deployment first.
func Resolve(ctx context.Context, cs kubernetes.Interface, ns, arg string) (Component, error) {
	kind, name, typed := strings.Cut(arg, "/")
	if !typed {
		kind, name = "", arg
	}
	switch strings.ToLower(kind) {
	case "", "deployment", "deployments", "deploy", "deployment.apps":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return fromDeployment(d)
		}
		if typed || !isNotFound(err) {
			return Component{}, wrapNotFound(err, "deployment/"+name, ns)
		}
		fallthrough
	case "statefulset", "statefulsets", "sts", "statefulset.apps":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return Component{}, wrapNotFound(err, arg, ns)
		}
		return fromStatefulSet(s)
	}
	return Component{}, fmt.Errorf("%q: a component is a Deployment or a StatefulSet", arg)
}

// Components lists the namespace's Deployments and StatefulSets, by name.
func Components(ctx context.Context, cs kubernetes.Interface, ns string) ([]Component, error) {
	var out []Component
	ds, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range ds.Items {
		c, err := fromDeployment(&ds.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	ss, err := cs.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range ss.Items {
		c, err := fromStatefulSet(&ss.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref() < out[j].Ref() })
	return out, nil
}

// Pods lists the pods the component's selector matches, terminating ones too.
func Pods(ctx context.Context, cs kubernetes.Interface, c Component) ([]corev1.Pod, error) {
	l, err := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: c.Selector.String()})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// PodReady reports whether a pod is Ready and not terminating.
func PodReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// poll calls f every interval until it reports done, fails, or ctx ends;
// on ctx's end the error says what was last seen.
func poll(ctx context.Context, interval time.Duration, what string, f func(context.Context) (bool, string, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		done, state, err := f(ctx)
		if ctx.Err() == nil {
			if err != nil {
				return err
			}
			if state != "" {
				last = state
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != "" {
				return fmt.Errorf("%s: %w (last seen: %s)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

var patchOpts = metav1.PatchOptions{FieldManager: "tandem"}

// patchComponent applies a strategic merge patch to the component and
// returns its new generation.
func patchComponent(ctx context.Context, cs kubernetes.Interface, c Component, patch string) (int64, error) {
	if c.Kind == KindDeployment {
		d, err := cs.AppsV1().Deployments(c.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, []byte(patch), patchOpts)
		if err != nil {
			return 0, err
		}
		return d.Generation, nil
	}
	s, err := cs.AppsV1().StatefulSets(c.Namespace).Patch(ctx, c.Name, types.StrategicMergePatchType, []byte(patch), patchOpts)
	if err != nil {
		return 0, err
	}
	return s.Generation, nil
}

// defaults fills in a command's timeout (5m), polling interval (500ms) and
// progress writer (none).
func defaults(timeout, interval *time.Duration, out *io.Writer) {
	if *timeout <= 0 {
		*timeout = 5 * time.Minute
	}
	if *interval <= 0 {
		*interval = 500 * time.Millisecond
	}
	if *out == nil {
		*out = io.Discard
	}
}
