package kubetest

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ZoneLabel is the well-known zone label of a Node.
const ZoneLabel = "topology.kubernetes.io/zone"

// SetZones labels the kwok nodes with their zone, as a cloud provider
// would: kwok-node-i gets zones[i % len(zones)] (and the matching
// topology.kubernetes.io/region "region-1"), so that zone spreading and
// anti-affinity can be tested on a WithKWOK cluster.
func (c *Cluster) SetZones(ctx context.Context, zones ...string) error {
	if len(zones) == 0 {
		return nil
	}
	list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("kubetest: list nodes: %w", err)
	}
	i := 0
	for _, n := range list.Items {
		if n.Annotations[KWOKNodeAnnotation] != "fake" {
			continue
		}
		var idx int
		if _, err := fmt.Sscanf(n.Name, "kwok-node-%d", &idx); err != nil {
			idx = i
		}
		i++
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q,"topology.kubernetes.io/region":"region-1"}}}`, ZoneLabel, zones[idx%len(zones)])
		if _, err := c.client.CoreV1().Nodes().Patch(ctx, n.Name, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("kubetest: label node %s: %w", n.Name, err)
		}
	}
	return nil
}
