package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"k8s.io/client-go/kubernetes"
)

// RestartOptions configure Restart.
type RestartOptions struct {
	// Gateway, when set, must answer /status after each restart.
	Gateway *Gateway
	// CoordNamespace and CoordName locate the gateway's coordination
	// objects; with CoordName "" the settle check is skipped.
	CoordNamespace, CoordName string
	DryRun                    bool
	// Timeout bounds each component's restart (default 5m).
	Timeout time.Duration
	// Interval between looks at the cluster (default 500ms).
	Interval time.Duration
	// Out receives one line per step.
	Out io.Writer
}

// RestartResult is one component's restart.
type RestartResult struct {
	Component string        `json:"component"`
	Role      string        `json:"role,omitempty"`
	DryRun    bool          `json:"dryRun,omitempty"`
	Took      time.Duration `json:"took"`
	Ready     time.Duration `json:"ready"`   // until every new pod was ready
	Settled   time.Duration `json:"settled"` // until the gateway settled and answered
}

// Restart restarts the components' pods the way `kubectl rollout restart`
// does (the pod-template annotation RestartedAt) and waits until they are
// ready and the gateway answers. Stateless components are restarted
// together; the instances of a master/failover pair (tandem.io/role) one at
// a time, the standby first, each only once the gateway is settled (see
// CoordStatus.Unsettled) and after it settled again with the restarted
// server seen up, so users never lose both. It writes pod templates only.
func Restart(ctx context.Context, cs kubernetes.Interface, comps []Component, o RestartOptions) ([]RestartResult, error) {
	defaults(&o.Timeout, &o.Interval, &o.Out)
	var stateless, roles []Component
	for _, c := range comps {
		if c.Role() != "" {
			roles = append(roles, c)
		} else {
			stateless = append(stateless, c)
		}
	}
	coord := o.CoordName != ""
	var active map[string]bool
	if coord && len(roles) > 0 {
		st, err := ReadCoordination(ctx, cs, o.CoordNamespace, o.CoordName, time.Now())
		switch {
		case errors.Is(err, ErrNoCoordination):
			fmt.Fprintf(o.Out, "note: %v; waiting for readiness and the gateway only\n", err)
			coord = false
		case err != nil:
			return nil, err
		default:
			active = map[string]bool{}
			for _, g := range st.Groups {
				active[g.Active] = true
			}
		}
	}
	// The standby first: restarting the active instance costs a switch.
	sort.SliceStable(roles, func(i, j int) bool { return !active[roles[i].Role()] && active[roles[j].Role()] })

	var out []RestartResult
	if len(stateless) > 0 {
		rs, err := restartTogether(ctx, cs, stateless, o)
		out = append(out, rs...)
		if err != nil {
			return out, err
		}
	}
	for _, c := range roles {
		if o.DryRun {
			fmt.Fprintf(o.Out, "%s (role %s): would restart, then wait for the gateway to settle before the next\n", c.Ref(), c.Role())
			out = append(out, RestartResult{Component: c.Ref(), Role: c.Role(), DryRun: true})
			continue
		}
		if coord {
			if err := waitSettled(ctx, cs, o, "before restarting "+c.Ref(), time.Time{}); err != nil {
				return out, err
			}
		}
		began := time.Now()
		rs, err := restartTogether(ctx, cs, []Component{c}, o)
		if err != nil {
			return append(out, rs...), err
		}
		r := rs[0]
		if coord {
			if err := waitSettled(ctx, cs, o, "after restarting "+c.Ref(), began, c.Role()); err != nil {
				return append(out, r), err
			}
		}
		if o.Gateway != nil {
			wctx, cancel := context.WithTimeout(ctx, o.Timeout)
			err := o.Gateway.wait(wctx, o.Interval, "")
			cancel()
			if err != nil {
				return append(out, r), err
			}
		}
		r.Took = time.Since(began)
		r.Settled = r.Took - r.Ready
		fmt.Fprintf(o.Out, "%s (role %s): gateway settled; restarted in %s\n", c.Ref(), c.Role(), r.Took.Round(time.Millisecond))
		out = append(out, r)
	}
	return out, nil
}

// restartTogether annotates every component's pod template, then waits for
// each to roll out (and for the gateway, when set, once for all).
func restartTogether(ctx context.Context, cs kubernetes.Interface, comps []Component, o RestartOptions) ([]RestartResult, error) {
	out := make([]RestartResult, len(comps))
	gens := make([]int64, len(comps))
	began := time.Now()
	stamp := began.UTC().Format(time.RFC3339)
	for i, c := range comps {
		out[i] = RestartResult{Component: c.Ref(), Role: c.Role(), DryRun: o.DryRun}
		if o.DryRun {
			fmt.Fprintf(o.Out, "%s: would set %s=%s on its pod template (%d pods replaced by its controller)\n", c.Ref(), RestartedAt, stamp, c.Replicas)
			continue
		}
		gen, err := annotateTemplate(ctx, cs, c, stamp)
		if err != nil {
			return out[:i], fmt.Errorf("%s: restart: %w", c.Ref(), err)
		}
		gens[i] = gen
		fmt.Fprintf(o.Out, "%s: restarting (%d pods)\n", c.Ref(), c.Replicas)
	}
	if o.DryRun {
		return out, nil
	}
	for i, c := range comps {
		wctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := poll(wctx, o.Interval, "waiting for "+c.Ref()+" to be ready", func(ctx context.Context) (bool, string, error) {
			return rolledOut(ctx, cs, c, gens[i])
		})
		cancel()
		if err != nil {
			return out[:i], err
		}
		out[i].Ready = time.Since(began)
		out[i].Took = out[i].Ready
		fmt.Fprintf(o.Out, "%s: ready after %s\n", c.Ref(), out[i].Ready.Round(time.Millisecond))
	}
	if o.Gateway != nil && (len(comps) > 1 || comps[0].Role() == "") {
		wctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := o.Gateway.wait(wctx, o.Interval, "")
		cancel()
		if err != nil {
			return out, err
		}
		for i := range out {
			out[i].Took = time.Since(began)
			out[i].Settled = out[i].Took - out[i].Ready
		}
		fmt.Fprintf(o.Out, "gateway answers /status after %s\n", time.Since(began).Round(time.Millisecond))
	}
	return out, nil
}

func annotateTemplate(ctx context.Context, cs kubernetes.Interface, c Component, stamp string) (int64, error) {
	return patchComponent(ctx, cs, c, fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAt, stamp))
}

// waitSettled waits until the coordination is settled, with servers seen
// up since after.
func waitSettled(ctx context.Context, cs kubernetes.Interface, o RestartOptions, when string, after time.Time, servers ...string) error {
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	why := ""
	return poll(wctx, o.Interval, "waiting for the gateway to settle "+when, func(ctx context.Context) (bool, string, error) {
		st, err := ReadCoordination(ctx, cs, o.CoordNamespace, o.CoordName, time.Now())
		if err != nil {
			// A failed read says less than the last state seen.
			if why == "" {
				why = err.Error()
			}
			return false, why, nil
		}
		why = st.Unsettled(after, servers...)
		return why == "", why, nil
	})
}

// MarshalJSON writes the durations as "1.5s".
func (r RestartResult) MarshalJSON() ([]byte, error) {
	type plain RestartResult
	return durations(plain(r), map[string]time.Duration{"took": r.Took, "ready": r.Ready, "settled": r.Settled})
}
