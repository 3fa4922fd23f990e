package kube

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
)

// What lives in the API (all in the coordination namespace, named from
// coordination.name, "tandem" by default):
//
//   - Lease tandem-leader: the replicas' leader election (client-go).
//   - ConfigMap tandem-decisions: one key per group, the decision the
//     leader published (decision below). Written only by the leader, with
//     optimistic concurrency on its resourceVersion.
//   - Lease tandem-replica-IDENTITY per replica: its heartbeat (renewTime),
//     and in an annotation its view (replicaView): the epoch it adopted per
//     group, its health view of each server, its pending operator requests.

// Decision is one group's published decision: the ConfigMap's JSON,
// which the operations CLI (internal/ops) reads too.
type Decision struct {
	Active string `json:"active,omitempty"`
	Epoch  uint64 `json:"epoch"`
	// Revoking: the first phase of a switch. Nobody holds the role; To
	// gets it once every live replica acknowledged Epoch, or at RevokedAt
	// plus the revoke timeout.
	Revoking  bool      `json:"revoking,omitempty"`
	To        string    `json:"to,omitempty"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	Hold      bool      `json:"hold,omitempty"`
	Drained   []string  `json:"drained,omitempty"`
	Pending   string    `json:"pending,omitempty"`
	Recheck   time.Time `json:"recheck,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// Last is the switch that led here.
	Last   failover.Switch `json:"last,omitzero"`
	Leader string          `json:"leader,omitempty"`
	// Done are the latest operator requests carried out, with outcomes.
	Done []result `json:"done,omitempty"`
}

// result is the outcome of an operator request: Err is "" on success.
type result struct {
	ID      string `json:"id"`
	Err     string `json:"err,omitempty"`
	Nothing bool   `json:"nothing,omitempty"` // a success that changed nothing
	Msg     string `json:"msg,omitempty"`
}

// doneSize bounds the outcomes kept per group.
const doneSize = 16

func (d Decision) published() failover.Published {
	return failover.Published{
		Committed: failover.Committed{Active: d.Active, Epoch: d.Epoch, Revoking: d.Revoking},
		Hold:      d.Hold, Pending: d.Pending, Recheck: d.Recheck, Reason: d.Reason, Last: d.Last,
	}
}

func (d Decision) drained(name string) bool {
	for _, n := range d.Drained {
		if n == name {
			return true
		}
	}
	return false
}

func (d *Decision) setDrained(name string, on bool) {
	out := d.Drained[:0:0]
	for _, n := range d.Drained {
		if n != name {
			out = append(out, n)
		}
	}
	if on {
		out = append(out, name)
		sort.Strings(out)
	}
	d.Drained = out
}

func (d *Decision) finish(r result) {
	d.Done = append(d.Done, r)
	if len(d.Done) > doneSize {
		d.Done = d.Done[len(d.Done)-doneSize:]
	}
}

func (d Decision) outcome(id string) (result, bool) {
	for _, r := range d.Done {
		if r.ID == id {
			return r, true
		}
	}
	return result{}, false
}

// ReplicaView is what a replica publishes about itself (its Lease's
// annotation tandem.io/view).
type ReplicaView struct {
	Groups   map[string]groupView `json:"groups"`
	Requests []request            `json:"requests,omitempty"`
}

// groupView is one replica's view of a group.
type groupView struct {
	// Ack is the epoch this replica adopted (a revocation included).
	Ack     uint64                `json:"ack"`
	Servers map[string]serverView `json:"servers"`
}

// serverView is one replica's health view of a server.
type serverView struct {
	Up     bool      `json:"up"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// request is an operator action asked on a replica, carried out by the leader.
type request struct {
	ID     string          `json:"id"`
	Group  string          `json:"group"`
	Action failover.Action `json:"action"`
}

// Operator actions beyond the elector's own: drains apply everywhere too.
const (
	actionDrain   = "drain"
	actionUndrain = "undrain"
)

const viewAnnotation = "tandem.io/view"

// DecodeDecisions reads the decisions ConfigMap's data.
func DecodeDecisions(data map[string]string) (map[string]Decision, error) {
	out := make(map[string]Decision, len(data))
	for g, raw := range data {
		var d Decision
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return nil, fmt.Errorf("decision of group %q: %w", g, err)
		}
		out[g] = d
	}
	return out, nil
}

func encodeDecision(d Decision) string {
	b, _ := json.Marshal(d) // plain data: cannot fail
	return string(b)
}
