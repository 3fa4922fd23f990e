package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// ErrSplitBrain refuses a scale that would run two pods of one role.
var ErrSplitBrain = errors.New("two pods of one role is split brain")

// ScaleCheck says why scaling c to n would give a role of its
// master/failover pair more than one pod (nil when it would not): n itself
// above 1, or another component of the same pair (PairKey) with the same
// role already running pods.
func ScaleCheck(c Component, n int32, all []Component) error {
	role := c.Role()
	if role == "" || n == 0 {
		return nil
	}
	total := n
	var others []string
	for _, o := range all {
		if o.Kind == c.Kind && o.Name == c.Name || o.Role() != role || PairKey(o.Template.Labels) != PairKey(c.Template.Labels) || o.Replicas == 0 {
			continue
		}
		total += o.Replicas
		others = append(others, fmt.Sprintf("%s has %d", o.Ref(), o.Replicas))
	}
	if total <= 1 {
		return nil
	}
	msg := fmt.Sprintf("%s: %d pods of role %s", c.Ref(), total, role)
	if len(others) > 0 {
		msg += " (" + strings.Join(others, ", ") + ")"
	}
	return fmt.Errorf("%w: %s; a master/failover instance runs one pod (--force to scale anyway)", ErrSplitBrain, msg)
}

// Scale sets c's replicas to n, refusing (ErrSplitBrain) without force a
// master/failover component that would run more than one pod per role.
func Scale(ctx context.Context, cs kubernetes.Interface, c Component, n int32, force bool) error {
	if n < 0 {
		return fmt.Errorf("%s: replicas %d: must be 0 or more", c.Ref(), n)
	}
	if !force {
		all, err := Components(ctx, cs, c.Namespace)
		if err != nil {
			return err
		}
		if err := ScaleCheck(c, n, all); err != nil {
			return err
		}
	}
	_, err := patchComponent(ctx, cs, c, fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
	if err != nil {
		return fmt.Errorf("%s: scale: %w", c.Ref(), err)
	}
	return nil
}
