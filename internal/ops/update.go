package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrNotRecreate refuses an update of a Deployment whose strategy is not
// Recreate when the operator did not agree to set it.
var ErrNotRecreate = errors.New("the strategy is not Recreate")

// UpdateOptions configure Update.
type UpdateOptions struct {
	Image string
	// Container to update; "" for the only one.
	Container string
	// Version /status must report afterwards; "" for the image's tag.
	Version string
	// SetRecreate sets a Deployment's strategy to Recreate without asking.
	SetRecreate bool
	// Confirm asks the operator (nil: not on a terminal, never asked).
	Confirm func(question string) bool
	// Gateway, when set, must report Version on /status.
	Gateway  *Gateway
	Timeout  time.Duration
	Interval time.Duration
	Out      io.Writer
}

// UpdateError is a failed update: the step, the state the component was
// left in, and the command that rolls back.
type UpdateError struct {
	Step     string
	State    string
	Rollback string
	Err      error
}

func (e *UpdateError) Error() string {
	s := fmt.Sprintf("update stopped while %s: %v\n  state: %s", e.Step, e.Err, e.State)
	if e.Rollback != "" {
		s += "\n  roll back with: " + e.Rollback
	}
	return s
}

func (e *UpdateError) Unwrap() error { return e.Err }

// UpdateResult is a finished update.
type UpdateResult struct {
	Component string        `json:"component"`
	From      string        `json:"from"`
	To        string        `json:"to"`
	Version   string        `json:"version,omitempty"`
	Replicas  int32         `json:"replicas"`
	Down      time.Duration `json:"down"` // from scale-to-zero until ready again
	Took      time.Duration `json:"took"`
}

// ImageTag is the tag of an image reference ("" for none or a digest only).
func ImageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return image[i+1:]
}

// Update moves c to a new image under the Recreate discipline, so that pods
// of two versions never exist at once: it makes sure a Deployment's
// strategy is Recreate, scales to zero, waits until no pod of the old
// version remains (terminating ones included), sets the image and the
// replicas back in one write, and waits for readiness and for /status
// through the gateway to report the new version. On failure it stops and
// returns an *UpdateError with the state and the rollback command.
func Update(ctx context.Context, cs kubernetes.Interface, c Component, o UpdateOptions) (UpdateResult, error) {
	defaults(&o.Timeout, &o.Interval, &o.Out)
	began := time.Now()
	res := UpdateResult{Component: c.Ref(), To: o.Image, Replicas: c.Replicas, Version: o.Version}
	if res.Version == "" {
		res.Version = ImageTag(o.Image)
	}
	ctr, err := pickContainer(c, o.Container)
	if err != nil {
		return res, err
	}
	res.From = c.Template.Spec.Containers[ctr].Image
	name := c.Template.Spec.Containers[ctr].Name
	if res.From == o.Image {
		fmt.Fprintf(o.Out, "%s: already runs %s\n", c.Ref(), o.Image)
		return res, nil
	}
	nsFlag := " -n " + c.Namespace
	if c.Kind == KindDeployment && c.Strategy != string(appsv1.RecreateDeploymentStrategyType) {
		q := fmt.Sprintf("%s has strategy %s: with it a rollout runs two versions at once. Set strategy Recreate?", c.Ref(), c.Strategy)
		if !o.SetRecreate && (o.Confirm == nil || !o.Confirm(q)) {
			return res, fmt.Errorf("%s: %w (%s): pass --set-recreate, or `kubectl patch %s%s -p '{\"spec\":{\"strategy\":{\"type\":\"Recreate\",\"rollingUpdate\":null}}}'`",
				c.Ref(), ErrNotRecreate, c.Strategy, c.Ref(), nsFlag)
		}
		if _, err := patchComponent(ctx, cs, c, `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`); err != nil {
			return res, fmt.Errorf("%s: set strategy Recreate: %w", c.Ref(), err)
		}
		fmt.Fprintf(o.Out, "%s: strategy set to Recreate\n", c.Ref())
	}
	fail := func(step, rollback string, err error) (UpdateResult, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return res, &UpdateError{Step: step, State: describe(sctx, cs, c), Rollback: rollback, Err: err}
	}
	scaleBack := fmt.Sprintf("kubectl tandem scale %s %d%s", c.Ref(), c.Replicas, nsFlag)
	back := fmt.Sprintf("kubectl tandem update %s --image %s%s", c.Ref(), res.From, nsFlag)

	// 1. Scale to zero.
	if _, err := patchComponent(ctx, cs, c, `{"spec":{"replicas":0}}`); err != nil {
		return fail("scaling to zero", scaleBack, err)
	}
	down := time.Now()
	fmt.Fprintf(o.Out, "%s: scaled to 0 (was %d), waiting until no pod of %s remains\n", c.Ref(), c.Replicas, res.From)
	// 2. No pod left, not even terminating.
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	err = poll(wctx, o.Interval, "waiting for the old pods to be gone", func(ctx context.Context) (bool, string, error) {
		pods, err := Pods(ctx, cs, c)
		if err != nil {
			return false, "", err
		}
		return len(pods) == 0, podSummary(pods), nil
	})
	cancel()
	if err != nil {
		return fail("waiting for the old pods to be gone", scaleBack, err)
	}
	fmt.Fprintf(o.Out, "%s: no pod left after %s\n", c.Ref(), time.Since(down).Round(time.Millisecond))
	// 3. The image and the replicas, in one write.
	gen, err := patchComponent(ctx, cs, c, fmt.Sprintf(`{"spec":{"replicas":%d,"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`,
		c.Replicas, name, o.Image))
	if err != nil {
		return fail("setting the image", scaleBack, err)
	}
	fmt.Fprintf(o.Out, "%s: image %s, scaled back to %d\n", c.Ref(), o.Image, c.Replicas)
	// 4. Ready.
	wctx, cancel = context.WithTimeout(ctx, o.Timeout)
	err = poll(wctx, o.Interval, "waiting for the new pods to be ready", func(ctx context.Context) (bool, string, error) {
		return rolledOut(ctx, cs, c, gen)
	})
	cancel()
	if err != nil {
		return fail("waiting for the new pods to be ready", back, err)
	}
	res.Down = time.Since(down)
	fmt.Fprintf(o.Out, "%s: ready after %s down\n", c.Ref(), res.Down.Round(time.Millisecond))
	// 5. The new version answers through the gateway.
	if o.Gateway != nil && c.Replicas > 0 {
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		err = o.Gateway.wait(wctx, o.Interval, res.Version)
		cancel()
		if err != nil {
			return fail("waiting for /status to report version "+res.Version, back, err)
		}
		fmt.Fprintf(o.Out, "%s: /status reports version %s\n", c.Ref(), res.Version)
	}
	res.Took = time.Since(began)
	return res, nil
}

func pickContainer(c Component, name string) (int, error) {
	cs := c.Template.Spec.Containers
	if name == "" {
		if len(cs) != 1 {
			return 0, fmt.Errorf("%s has %d containers: name one with --container", c.Ref(), len(cs))
		}
		return 0, nil
	}
	for i := range cs {
		if cs[i].Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s has no container %q", c.Ref(), name)
}

// describe says in one line what state a component is in.
func describe(ctx context.Context, cs kubernetes.Interface, c Component) string {
	var replicas int32
	var image string
	switch c.Kind {
	case KindDeployment:
		d, err := cs.AppsV1().Deployments(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return "unknown: " + err.Error()
		}
		replicas, image = ptrOr(d.Spec.Replicas, 1), images(d.Spec.Template.Spec.Containers)
	default:
		s, err := cs.AppsV1().StatefulSets(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return "unknown: " + err.Error()
		}
		replicas, image = ptrOr(s.Spec.Replicas, 1), images(s.Spec.Template.Spec.Containers)
	}
	pods, err := Pods(ctx, cs, c)
	ps := podSummary(pods)
	if err != nil {
		ps = "pods unknown: " + err.Error()
	}
	return fmt.Sprintf("%s: replicas %d, image %s; %s", c.Ref(), replicas, image, ps)
}

func ptrOr(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}

func images(cs []corev1.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Image)
	}
	return strings.Join(out, ",")
}

// MarshalJSON writes the durations as "1.5s".
func (r UpdateResult) MarshalJSON() ([]byte, error) {
	type plain UpdateResult
	return durations(plain(r), map[string]time.Duration{"took": r.Took, "down": r.Down})
}
