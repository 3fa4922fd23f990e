// Package kube is tandem's side of Kubernetes: servers discovered from
// pods, several gateway replicas agreeing on each group's active server
// through a Lease and a published decision, and the Events that tell the
// story. Nothing on the request path imports it: it feeds the gateway
// snapshots of servers and committed decisions, as the config file does.
package kube

import (
	"fmt"
	"os"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient connects to the cluster k names: its kubeconfig (outside the
// cluster) or the pod's service account (inside). timeout bounds every API
// call, so that a replica cut off from the API notices within its fencing
// bound rather than after TCP gives up.
func NewClient(k *config.Kubernetes, timeout time.Duration) (kubernetes.Interface, *rest.Config, error) {
	var rc *rest.Config
	var err error
	if k.Kubeconfig != "" {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: k.Kubeconfig}
		over := &clientcmd.ConfigOverrides{CurrentContext: k.Context}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "tandem"
	rc.Timeout = timeout
	// The gateway's own calls are few; the client's default limit (5/s)
	// would delay a burst of acknowledgements during a switch.
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	return cs, rc, nil
}

// Namespace is where the coordination objects and Events live.
func Namespace(k *config.Kubernetes) string {
	if k.Namespace != "" {
		return k.Namespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return string(b)
	}
	return "default"
}

// Identity names this replica: the config's, POD_NAME, or the host name.
func Identity(k *config.Kubernetes) string {
	if k.Identity != "" {
		return k.Identity
	}
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}
