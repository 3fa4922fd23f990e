package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// rolledOut reports whether the component's controller observed
// generation gen and every desired pod is updated and ready, with no
// older pod left (as `kubectl rollout status` waits, plus the pods: none
// terminating, every one ready).
func rolledOut(ctx context.Context, cs kubernetes.Interface, c Component, gen int64) (bool, string, error) {
	var want, ready, updated, total int32
	var observed int64
	switch c.Kind {
	case KindDeployment:
		d, err := cs.AppsV1().Deployments(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want, observed = 1, d.Status.ObservedGeneration
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		ready, updated, total = d.Status.ReadyReplicas, d.Status.UpdatedReplicas, d.Status.Replicas
		if d.Status.AvailableReplicas < want {
			ready = min(ready, d.Status.AvailableReplicas)
		}
	case KindStatefulSet:
		s, err := cs.AppsV1().StatefulSets(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		want, observed = 1, s.Status.ObservedGeneration
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		ready, updated, total = s.Status.ReadyReplicas, s.Status.UpdatedReplicas, s.Status.Replicas
		if s.Status.UpdateRevision != s.Status.CurrentRevision && want > 0 {
			updated = min(updated, want-1)
		}
	}
	state := fmt.Sprintf("%d/%d updated, %d ready, %d pods", updated, want, ready, total)
	if observed < gen || updated != want || ready != want || total != want {
		return false, state, nil
	}
	pods, err := Pods(ctx, cs, c)
	if err != nil {
		return false, "", err
	}
	n := 0
	for i := range pods {
		if !PodReady(&pods[i]) {
			return false, fmt.Sprintf("%s; pod %s not ready or terminating", state, pods[i].Name), nil
		}
		n++
	}
	return int32(n) == want, state, nil
}

// Gateway probes an app's /status through the gateway.
type Gateway struct {
	// URL of the app through the gateway; a URL without a path gets /status.
	URL string
	// Host overrides the Host header (the gateway routes by it).
	Host   string
	Client *http.Client
}

// Status is what the app's /status says.
type Status struct {
	Version string `json:"version"`
	Role    string `json:"role,omitempty"`
	Raw     string `json:"-"`
}

// Check asks for /status once: it must answer 200 with a body holding
// "version".
func (g *Gateway) Check(ctx context.Context) (Status, error) {
	u, err := url.Parse(g.URL)
	if err != nil {
		return Status{}, fmt.Errorf("gateway URL %q: %w", g.URL, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/status"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Status{}, err
	}
	if g.Host != "" {
		req.Host = g.Host
	}
	client := g.Client
	if client == nil {
		client = &http.Client{Timeout: 3 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("%s: %s", u, resp.Status)
	}
	if !strings.Contains(string(body), "version") {
		return Status{}, fmt.Errorf("%s: the body holds no version", u)
	}
	st := Status{Raw: string(body)}
	_ = json.Unmarshal(body, &st) // a plain-text body with "version" still answers
	return st, nil
}

// waitGateway polls the gateway until /status answers (and, when version
// is set, reports it).
func (g *Gateway) wait(ctx context.Context, interval time.Duration, version string) error {
	return poll(ctx, interval, "waiting for /status through the gateway at "+g.URL, func(ctx context.Context) (bool, string, error) {
		st, err := g.Check(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		if version != "" && st.Version != version {
			return false, fmt.Sprintf("version %q, want %q", st.Version, version), nil
		}
		return true, "", nil
	})
}

// podSummary says in one line what pods a component has.
func podSummary(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "no pods"
	}
	var parts []string
	for i := range pods {
		p := &pods[i]
		s := string(p.Status.Phase)
		switch {
		case p.DeletionTimestamp != nil:
			s = "Terminating"
		case PodReady(p):
			s = "Ready"
		}
		img := ""
		if len(p.Spec.Containers) > 0 {
			img = " " + p.Spec.Containers[0].Image
		}
		parts = append(parts, p.Name+" "+s+img)
	}
	return strings.Join(parts, ", ")
}
