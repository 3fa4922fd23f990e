package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The coordination objects internal/kube writes (docs/kubernetes.md): the
// Lease NAME-leader, the ConfigMap NAME-decisions (one kube.Decision per
// group) and a Lease NAME-replica-ID per replica, labelled
// tandem.io/replica-of=NAME, whose annotation tandem.io/view holds its
// kube.ReplicaView. The CLI only reads them, in kube's own types.

// GroupStatus is one group as the cluster holds it.
type GroupStatus struct {
	Name string `json:"name"`
	kube.Decision
}

// ReplicaStatus is one gateway replica's heartbeat and view.
type ReplicaStatus struct {
	Identity string              `json:"identity"`
	Live     bool                `json:"live"`
	Renewed  time.Time           `json:"renewed,omitzero"`
	Acked    map[string]uint64   `json:"acked"`
	Down     map[string][]string `json:"down,omitempty"`
	Up       map[string][]string `json:"up,omitempty"`
	Requests int                 `json:"requests,omitempty"`
	// Since is when each server's health last changed, as this replica
	// saw it: group -> server -> time.
	Since map[string]map[string]time.Time `json:"-"`
}

// CoordStatus is the coordination state read from the cluster.
type CoordStatus struct {
	Namespace     string          `json:"namespace"`
	Name          string          `json:"name"`
	Leader        string          `json:"leader"`
	LeaderLive    bool            `json:"leaderLive"`
	LeaderRenewed time.Time       `json:"leaderRenewed,omitzero"`
	Groups        []GroupStatus   `json:"groups"`
	Replicas      []ReplicaStatus `json:"replicas"`
}

// ErrNoCoordination means the decisions ConfigMap does not exist: no
// gateway with coordination runs under that name in that namespace.
var ErrNoCoordination = fmt.Errorf("no tandem coordination found")

// ReadCoordination reads the coordination objects named name in ns.
func ReadCoordination(ctx context.Context, cs kubernetes.Interface, ns, name string, now time.Time) (CoordStatus, error) {
	st := CoordStatus{Namespace: ns, Name: name}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name+"-decisions", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return st, fmt.Errorf("%w: ConfigMap %s/%s-decisions is missing (is --coordination-name right?)", ErrNoCoordination, ns, name)
	}
	if err != nil {
		return st, err
	}
	ds, err := kube.DecodeDecisions(cm.Data)
	if err != nil {
		return st, err
	}
	for g, d := range ds {
		st.Groups = append(st.Groups, GroupStatus{Name: g, Decision: d})
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Name < st.Groups[j].Name })
	if l, err := cs.CoordinationV1().Leases(ns).Get(ctx, name+"-leader", metav1.GetOptions{}); err == nil {
		if l.Spec.HolderIdentity != nil {
			st.Leader = *l.Spec.HolderIdentity
		}
		st.LeaderLive = kube.LeaseLive(l, now)
		if l.Spec.RenewTime != nil {
			st.LeaderRenewed = l.Spec.RenewTime.Time
		}
	} else if !apierrors.IsNotFound(err) {
		return st, err
	}
	ls, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{LabelSelector: "tandem.io/replica-of=" + name})
	if err != nil {
		return st, err
	}
	for i := range ls.Items {
		l := &ls.Items[i]
		rs := ReplicaStatus{Identity: strings.TrimPrefix(l.Name, name+"-replica-"), Live: kube.LeaseLive(l, now), Acked: map[string]uint64{},
			Since: map[string]map[string]time.Time{}}
		if l.Spec.HolderIdentity != nil {
			rs.Identity = *l.Spec.HolderIdentity
		}
		if l.Spec.RenewTime != nil {
			rs.Renewed = l.Spec.RenewTime.Time
		}
		var v kube.ReplicaView
		if json.Unmarshal([]byte(l.Annotations["tandem.io/view"]), &v) == nil {
			rs.Requests = len(v.Requests)
			for g, gv := range v.Groups {
				rs.Acked[g] = gv.Ack
				rs.Since[g] = map[string]time.Time{}
				for s, sv := range gv.Servers {
					rs.Since[g][s] = sv.Since
					m := &rs.Up
					if !sv.Up {
						m = &rs.Down
					}
					if *m == nil {
						*m = map[string][]string{}
					}
					(*m)[g] = append((*m)[g], s)
				}
				sort.Strings(rs.Down[g])
				sort.Strings(rs.Up[g])
			}
		}
		st.Replicas = append(st.Replicas, rs)
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].Identity < st.Replicas[j].Identity })
	return st, nil
}

// Group returns the named group's status.
func (s CoordStatus) Group(name string) (GroupStatus, bool) {
	for _, g := range s.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return GroupStatus{}, false
}

// Unsettled says why the coordination is not settled ("" when it is):
// every group has an active server and no revocation in progress, and
// every live replica acknowledged its epoch. With servers set, each of
// them that a group knows must be seen up by every live replica, up since
// after (a server restarted at after has fresh health once its new
// instance was checked; the zero time takes any).
func (s CoordStatus) Unsettled(after time.Time, servers ...string) string {
	live := 0
	for _, r := range s.Replicas {
		if r.Live {
			live++
		}
	}
	if live == 0 {
		return "no live gateway replica"
	}
	for _, g := range s.Groups {
		switch {
		case g.Revoking:
			return fmt.Sprintf("group %s: switch to %s in progress (epoch %d revoking)", g.Name, g.To, g.Epoch)
		case g.Active == "":
			return fmt.Sprintf("group %s: no active server", g.Name)
		}
		for _, r := range s.Replicas {
			if !r.Live {
				continue
			}
			if r.Acked[g.Name] < g.Epoch {
				return fmt.Sprintf("group %s: replica %s acknowledged epoch %d of %d", g.Name, r.Identity, r.Acked[g.Name], g.Epoch)
			}
			for _, srv := range servers {
				if !knows(s, g.Name, srv) {
					continue
				}
				switch {
				case slices.Contains(r.Down[g.Name], srv):
					return fmt.Sprintf("group %s: replica %s sees %s down", g.Name, r.Identity, srv)
				case !slices.Contains(r.Up[g.Name], srv):
					return fmt.Sprintf("group %s: replica %s has not checked %s yet", g.Name, r.Identity, srv)
				case r.Since[g.Name][srv].Before(after):
					return fmt.Sprintf("group %s: replica %s has not seen the new %s yet (up since %s)", g.Name, r.Identity, srv,
						r.Since[g.Name][srv].UTC().Format(time.RFC3339Nano))
				}
			}
		}
	}
	return ""
}

// knows reports whether any replica's view of group holds server.
func knows(s CoordStatus, group, server string) bool {
	for _, r := range s.Replicas {
		if slices.Contains(r.Up[group], server) || slices.Contains(r.Down[group], server) {
			return true
		}
	}
	return false
}

// Admin is one gateway replica's admin API, through which the CLI asks the
// leader for a switch or a failback: a replica writes the request into its
// own Lease view and returns the leader's outcome.
type Admin struct {
	URL    string
	Token  string
	By     string // X-Tandem-User
	Client *http.Client
}

// Switch asks for group's role to move to server, and holds it there.
func (a *Admin) Switch(ctx context.Context, group, server string) error {
	return a.post(ctx, "/api/v1/groups/"+url.PathEscape(group)+"/switch/"+url.PathEscape(server))
}

// Failback asks for group to return to its preferred server now.
func (a *Admin) Failback(ctx context.Context, group string) error {
	return a.post(ctx, "/api/v1/groups/"+url.PathEscape(group)+"/failback")
}

func (a *Admin) post(ctx context.Context, path string) error {
	if a.URL == "" {
		return fmt.Errorf("no admin API: pass --admin URL of a gateway replica's admin listener (kubectl port-forward works)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.URL, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("admin URL %q: %w", a.URL, err)
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	if a.By != "" {
		req.Header.Set("X-Tandem-User", a.By)
	}
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s is unreachable: %w", a.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("refused (%d): %s", resp.StatusCode, e.Error)
		}
		return fmt.Errorf("refused (%d): %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// WriteCoordination writes the coordination state as tables.
func WriteCoordination(w io.Writer, st CoordStatus, now time.Time, paint func(colour, s string) string) {
	leader := orDash(st.Leader)
	if st.Leader != "" && !st.LeaderLive {
		leader = paint(ColourRed, st.Leader+" (expired)")
	}
	fmt.Fprintf(w, "coordination %s/%s, leader %s, renewed %s ago\n\n", st.Namespace, st.Name, leader, Age(st.LeaderRenewed, now))
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tACTIVE\tEPOCH\tSTATE\tDRAINED\tLAST SWITCH")
	for _, g := range st.Groups {
		state, c := "settled", ColourGreen
		switch {
		case g.Revoking:
			state, c = "revoking -> "+g.To, ColourYellow
		case g.Active == "":
			state, c = "no server", ColourRed
		case g.Hold:
			state = "held by operator"
		}
		last := "-"
		if !g.Last.At.IsZero() {
			last = fmt.Sprintf("%s ago %s -> %s: %s", Age(g.Last.At, now), orDash(g.Last.From), orDash(g.Last.To), g.Last.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", g.Name, orDash(g.Active), g.Epoch, paint(c, state), orDash(strings.Join(g.Drained, ",")), last)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "REPLICA\tLIVE\tRENEWED\tACKED\tSEES DOWN")
	for _, r := range st.Replicas {
		live := paint(ColourGreen, "yes")
		if !r.Live {
			live = paint(ColourRed, "no")
		}
		var acked, down []string
		for _, g := range st.Groups {
			a := fmt.Sprintf("%s=%d", g.Name, r.Acked[g.Name])
			if r.Acked[g.Name] < g.Epoch {
				a = paint(ColourYellow, a)
			}
			acked = append(acked, a)
			if len(r.Down[g.Name]) > 0 {
				down = append(down, g.Name+": "+strings.Join(r.Down[g.Name], ","))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\n", r.Identity, live, Age(r.Renewed, now), strings.Join(acked, " "), orDash(strings.Join(down, "; ")))
	}
	tw.Flush()
}
