package ops

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Severities of a finding.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// Finding is one thing doctor found.
type Finding struct {
	Severity string `json:"severity"`
	Check    string `json:"check"`
	Object   string `json:"object"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// DefaultGatewaySelector selects the gateway's pods as the Helm chart
// labels them (its example app shares the name label, not the component).
const DefaultGatewaySelector = "app.kubernetes.io/name=tandem,app.kubernetes.io/component=gateway"

// DoctorOptions configure Doctor.
type DoctorOptions struct {
	// CoordNamespace and CoordName locate the gateway's coordination
	// objects (default: the namespace, "tandem").
	CoordNamespace, CoordName string
	// GatewaySelector finds the gateway's pods besides the replicas'
	// Leases (default: the chart's gateway pods, app.kubernetes.io/name=tandem,
	// app.kubernetes.io/component=gateway).
	GatewaySelector string
	Now             func() time.Time
}

// Doctor checks a namespace against the high-availability guidance: the
// instances of a master/failover pair on different nodes and zones, one
// pod each; schema-migrating components (MigratesSchema) on Recreate;
// stateless components with 2 replicas or more; readiness probes;
// PodDisruptionBudgets; the gateway's replicas across zones; the gateway's
// Leases fresh. Findings are sorted errors first.
func Doctor(ctx context.Context, cs kubernetes.Interface, ns string, o DoctorOptions) ([]Finding, error) {
	if o.CoordName == "" {
		o.CoordName = "tandem"
	}
	if o.CoordNamespace == "" {
		o.CoordNamespace = ns
	}
	if o.GatewaySelector == "" {
		o.GatewaySelector = DefaultGatewaySelector
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &doctor{o: o, ns: ns, zones: map[string]string{}}
	comps, err := Components(ctx, cs, ns)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	switch {
	case err == nil:
		zs := map[string]bool{}
		for _, n := range nodes.Items {
			d.zones[n.Name] = n.Labels[ZoneLabel]
			if z := n.Labels[ZoneLabel]; z != "" {
				zs[z] = true
			}
		}
		d.clusterZones = len(zs)
	case apierrors.IsForbidden(err):
		d.add(SeverityInfo, "zones", "nodes", "cannot read Nodes, so zones are unknown: "+err.Error(), "grant get/list on nodes to check zones")
	default:
		return nil, err
	}
	pdbs, err := cs.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	d.pdbs = pdbs.Items

	pairs := map[string][]Component{}
	for _, c := range comps {
		cp := podsOf(c, pods.Items)
		if c.Role() != "" {
			pairs[PairKey(c.Template.Labels)] = append(pairs[PairKey(c.Template.Labels)], c)
		} else if c.Replicas < 2 {
			d.add(SeverityWarning, "replicas", c.Ref(), fmt.Sprintf("a stateless component with %d replica(s): a restart or a node loss is an outage", c.Replicas),
				fmt.Sprintf("kubectl tandem scale %s 2 -n %s (or replicas: 2)", c.Ref(), ns))
		}
		d.migration(c)
		d.probes(c)
		d.budget(c)
		if c.Role() != "" && len(cp) > 1 {
			d.add(SeverityError, "one pod per role", c.Ref(), fmt.Sprintf("%d pods of role %s: two masters is split brain", len(cp), c.Role()),
				fmt.Sprintf("kubectl tandem scale %s 1 -n %s", c.Ref(), ns))
		}
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d.pair(k, pairs[k], pods.Items)
	}
	if err := d.gateway(ctx, cs, pods.Items); err != nil {
		return nil, err
	}
	rank := map[string]int{SeverityError: 0, SeverityWarning: 1, SeverityInfo: 2}
	sort.SliceStable(d.out, func(i, j int) bool { return rank[d.out[i].Severity] < rank[d.out[j].Severity] })
	return d.out, nil
}

type doctor struct {
	o            DoctorOptions
	ns           string
	zones        map[string]string // node -> zone
	clusterZones int
	pdbs         []policyv1.PodDisruptionBudget
	out          []Finding
}

func (d *doctor) add(sev, check, obj, msg, fix string) {
	d.out = append(d.out, Finding{Severity: sev, Check: check, Object: obj, Message: msg, Fix: fix})
}

func podsOf(c Component, pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && c.Selector.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func (d *doctor) migration(c Component) {
	if !c.Migrates() {
		return
	}
	switch {
	case c.Kind == KindDeployment && c.Strategy != string(appsv1.RecreateDeploymentStrategyType):
		d.add(SeverityError, "recreate", c.Ref(), fmt.Sprintf("migrates the schema (%s) but its strategy is %s: a rollout runs two versions at once", MigratesSchema, c.Strategy),
			fmt.Sprintf(`kubectl patch %s -n %s -p '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}', and update with kubectl tandem update`, c.Ref(), d.ns))
	case c.Kind == KindStatefulSet && c.Replicas > 1 && c.Strategy == string(appsv1.RollingUpdateStatefulSetStrategyType):
		d.add(SeverityError, "recreate", c.Ref(), fmt.Sprintf("migrates the schema (%s) but a rolling update of its %d pods runs two versions at once", MigratesSchema, c.Replicas),
			"set updateStrategy OnDelete and update with kubectl tandem update (scale to zero, then the new image)")
	}
}

func (d *doctor) probes(c Component) {
	var missing []string
	for _, ctr := range c.Template.Spec.Containers {
		if ctr.ReadinessProbe == nil {
			missing = append(missing, ctr.Name)
		}
	}
	if len(missing) > 0 {
		d.add(SeverityWarning, "readiness", c.Ref(), "no readiness probe on container(s) "+strings.Join(missing, ", ")+": a pod gets traffic before it can serve",
			"add readinessProbe (for an app built on appkit: httpGet /status)")
	}
}

// covering returns the PDBs that select the component's pods.
func (d *doctor) covering(l map[string]string) []policyv1.PodDisruptionBudget {
	var out []policyv1.PodDisruptionBudget
	for _, p := range d.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(l)) {
			out = append(out, p)
		}
	}
	return out
}

func (d *doctor) budget(c Component) {
	if c.Role() != "" || c.Replicas < 2 {
		return // a pair's budget is checked as a pair
	}
	pdbs := d.covering(c.Template.Labels)
	if len(pdbs) == 0 {
		d.add(SeverityWarning, "disruption budget", c.Ref(), "no PodDisruptionBudget: a node drain may take every replica at once",
			fmt.Sprintf("a PodDisruptionBudget selecting %s with maxUnavailable: 1", labels.FormatLabels(c.Template.Labels)))
		return
	}
	for _, p := range pdbs {
		if blocks(p, c.Replicas) {
			d.add(SeverityWarning, "disruption budget", "poddisruptionbudget/"+p.Name, fmt.Sprintf("allows no disruption of %s's %d replicas: node drains block", c.Ref(), c.Replicas),
				"use maxUnavailable: 1")
		}
	}
}

// blocks reports whether a budget allows no voluntary disruption of n pods.
func blocks(p policyv1.PodDisruptionBudget, n int32) bool {
	if mu := p.Spec.MaxUnavailable; mu != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(mu, int(n), false)
		return err == nil && v == 0
	}
	if ma := p.Spec.MinAvailable; ma != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(ma, int(n), true)
		return err == nil && int32(v) >= n
	}
	return false
}

func (d *doctor) pair(key string, comps []Component, pods []corev1.Pod) {
	name := "pair " + key
	roles := map[string][]corev1.Pod{}
	var order []string
	for _, c := range comps {
		if _, ok := roles[c.Role()]; !ok {
			order = append(order, c.Role())
		}
		roles[c.Role()] = append(roles[c.Role()], podsOf(c, pods)...)
		if c.Replicas > 1 {
			d.add(SeverityError, "one pod per role", c.Ref(), fmt.Sprintf("replicas %d for role %s: two masters is split brain", c.Replicas, c.Role()),
				fmt.Sprintf("kubectl tandem scale %s 1 -n %s", c.Ref(), d.ns))
		}
	}
	if len(order) < 2 {
		d.add(SeverityWarning, "failover", name, fmt.Sprintf("only role %s: no failover instance", order[0]), "run a second instance with another tandem.io/role (failover)")
	}
	for i := range order {
		for j := i + 1; j < len(order); j++ {
			for _, a := range roles[order[i]] {
				for _, b := range roles[order[j]] {
					d.placement(name, a, b)
				}
			}
		}
	}
	// Where they run now may be luck: the next reschedule may put both on
	// one node unless the templates keep them apart.
	for i := range comps {
		for j := i + 1; j < len(comps); j++ {
			if comps[i].Role() != comps[j].Role() && !apart(comps[i].Template, comps[j].Template) {
				d.add(SeverityWarning, "placement", fmt.Sprintf("%s (%s, %s)", name, comps[i].Ref(), comps[j].Ref()),
					"nothing keeps the instances on different nodes and zones: a reschedule may put both on one",
					"a required podAntiAffinity between the roles with topologyKey "+ZoneLabel+", or a nodeSelector per zone")
			}
		}
	}
	// One budget over both instances lets a drain take one of them; a
	// budget over a single-pod instance alone blocks every drain.
	said := map[string]bool{}
	uncovered := false
	for _, c := range comps {
		pdbs := d.covering(c.Template.Labels)
		uncovered = uncovered || len(pdbs) == 0
		for _, p := range pdbs {
			if said[p.Name] {
				continue
			}
			said[p.Name] = true
			sel, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			covered := int32(0)
			for _, o := range comps {
				if sel.Matches(labels.Set(o.Template.Labels)) {
					covered += max(o.Replicas, 1)
				}
			}
			if blocks(p, covered) {
				d.add(SeverityWarning, "disruption budget", "poddisruptionbudget/"+p.Name, fmt.Sprintf("allows no disruption of %s: node drains block", name),
					"one budget over both instances with maxUnavailable: 1")
			}
		}
	}
	if uncovered {
		d.add(SeverityWarning, "disruption budget", name, "no PodDisruptionBudget over the pair: a node drain may evict both instances at once",
			fmt.Sprintf("a PodDisruptionBudget selecting both instances (e.g. %s=%s) with maxUnavailable: 1", pairLabel(comps[0].Template.Labels), key))
	}
}

// pairLabel is the label PairKey read.
func pairLabel(l map[string]string) string {
	for _, k := range pairLabels {
		if l[k] != "" {
			return k
		}
	}
	return LabelPair
}

func (d *doctor) placement(name string, a, b corev1.Pod) {
	obj := fmt.Sprintf("%s (pod/%s, pod/%s)", name, a.Name, b.Name)
	ra, rb := a.Labels[LabelRole], b.Labels[LabelRole]
	switch {
	case a.Spec.NodeName == "" || b.Spec.NodeName == "":
		return // not scheduled yet
	case a.Spec.NodeName == b.Spec.NodeName:
		d.add(SeverityError, "placement", obj, fmt.Sprintf("%s and %s run on the same node %s: losing it loses both", ra, rb, a.Spec.NodeName),
			"podAntiAffinity (requiredDuringScheduling, topologyKey kubernetes.io/hostname) between the roles, or a nodeSelector per zone")
		return
	}
	za, zb := d.zones[a.Spec.NodeName], d.zones[b.Spec.NodeName]
	switch {
	case za == "" || zb == "":
		d.add(SeverityWarning, "placement", obj, "zone unknown (node without "+ZoneLabel+")", "label the nodes with their zone")
	case za == zb && d.clusterZones > 1:
		d.add(SeverityError, "placement", obj, fmt.Sprintf("%s and %s run in the same zone %s: losing it loses both", ra, rb, za),
			"podAntiAffinity or a nodeSelector with topologyKey "+ZoneLabel+" between the roles")
	case za == zb:
		d.add(SeverityWarning, "placement", obj, "the cluster has a single zone "+za, "run nodes in a second zone")
	}
}

func (d *doctor) gateway(ctx context.Context, cs kubernetes.Interface, nsPods []corev1.Pod) error {
	now := d.o.Now()
	st, err := ReadCoordination(ctx, cs, d.o.CoordNamespace, d.o.CoordName, now)
	coord := err == nil
	if err != nil && !apierrors.IsNotFound(err) && !strings.Contains(err.Error(), ErrNoCoordination.Error()) {
		return err
	}
	gsel, err := labels.Parse(d.o.GatewaySelector)
	if err != nil {
		return fmt.Errorf("gateway selector: %w", err)
	}
	pods := nsPods
	if d.o.CoordNamespace != d.ns {
		pl, err := cs.CoreV1().Pods(d.o.CoordNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		pods = pl.Items
	}
	ids := map[string]bool{}
	for _, r := range st.Replicas {
		ids[r.Identity] = true
	}
	var gw []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && (ids[p.Name] || gsel.Matches(labels.Set(p.Labels))) {
			gw = append(gw, p)
		}
	}
	obj := "gateway " + d.o.CoordNamespace + "/" + d.o.CoordName
	if !coord && len(gw) == 0 {
		d.add(SeverityInfo, "gateway", obj, "no tandem gateway here (no "+d.o.CoordName+"-decisions ConfigMap, no pod matching "+d.o.GatewaySelector+")",
			"run doctor with --coordination-namespace where the gateway runs")
		return nil
	}
	zones := map[string]int{}
	for _, p := range gw {
		if z := d.zones[p.Spec.NodeName]; z != "" {
			zones[z]++
		}
	}
	switch {
	case len(gw) == 1:
		d.add(SeverityWarning, "gateway replicas", obj, "one gateway replica: losing it or its zone loses every app behind it", "replicas: 2 or more, spread across zones")
	case len(gw) > 1 && len(zones) == 1 && d.clusterZones > 1:
		d.add(SeverityError, "gateway replicas", obj, fmt.Sprintf("all %d gateway replicas in one zone", len(gw)),
			"topologySpreadConstraints with topologyKey "+ZoneLabel+" (whenUnsatisfiable: DoNotSchedule)")
	}
	lease := "lease/" + d.o.CoordName + "-leader"
	if !coord {
		// Gateway pods, and no decisions: they are not coordinating.
		d.add(SeverityError, "leader lease", lease, fmt.Sprintf("%d gateway pod(s) but no %s-decisions ConfigMap: no replica has decided anything", len(gw), d.o.CoordName),
			"check the replicas are running and their logs (RBAC on leases and configmaps, kubernetes.coordination in the config)")
		return nil
	}
	switch {
	case st.Leader == "":
		d.add(SeverityError, "leader lease", lease, "no leader: nobody decides the active servers", "check the gateway replicas' logs and RBAC on leases")
	case !st.LeaderLive:
		d.add(SeverityError, "leader lease", lease, fmt.Sprintf("held by %s but not renewed since %s", st.Leader, st.LeaderRenewed.UTC().Format(time.RFC3339)),
			"check the gateway replicas: the leader is gone or cut off from the API")
	}
	for _, r := range st.Replicas {
		if !r.Live {
			d.add(SeverityWarning, "replica lease", "lease/"+d.o.CoordName+"-replica-"+r.Identity,
				fmt.Sprintf("replica %s not renewed since %s: fenced, or gone", r.Identity, r.Renewed.UTC().Format(time.RFC3339)),
				"a replica that is gone for good: delete its Lease")
		}
	}
	for _, g := range st.Groups {
		if g.Active == "" && !g.Revoking {
			d.add(SeverityError, "active server", "group "+g.Name, "no active server: "+g.Reason, "kubectl tandem events; bring a server of the group up")
		}
	}
	return nil
}

// WriteFindings writes findings as a table.
func WriteFindings(w io.Writer, fs []Finding, paint func(colour, s string) string) {
	tw := newTable(w)
	fmt.Fprintln(tw, "SEVERITY\tCHECK\tOBJECT\tFINDING\tFIX")
	for _, f := range fs {
		c := ColourPlain
		switch f.Severity {
		case SeverityError:
			c = ColourRed
		case SeverityWarning:
			c = ColourYellow
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", paint(c, f.Severity), f.Check, f.Object, f.Message, f.Fix)
	}
	tw.Flush()
}

// Errors counts the error-level findings.
func Errors(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == SeverityError {
			n++
		}
	}
	return n
}

// apart reports whether two pod templates cannot land in one zone (or, for
// want of zones, on one node): node selectors that differ on the zone or the
// host name, a required podAntiAffinity of either against the other's
// labels, or a zone spread constraint over both that refuses to schedule.
func apart(a, b corev1.PodTemplateSpec) bool {
	for _, k := range []string{ZoneLabel, "kubernetes.io/hostname"} {
		va, vb := a.Spec.NodeSelector[k], b.Spec.NodeSelector[k]
		if va != "" && vb != "" && va != vb {
			return true
		}
	}
	return repels(a, b.Labels) || repels(b, a.Labels)
}

// repels reports whether t's required anti-affinity or a DoNotSchedule
// spread constraint keeps its pods away from pods labelled l.
func repels(t corev1.PodTemplateSpec, l map[string]string) bool {
	matches := func(ls *metav1.LabelSelector) bool { return selects(ls, l) }
	if aff := t.Spec.Affinity; aff != nil && aff.PodAntiAffinity != nil {
		for _, term := range aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if (term.TopologyKey == ZoneLabel || term.TopologyKey == "kubernetes.io/hostname") && matches(term.LabelSelector) {
				return true
			}
		}
	}
	for _, c := range t.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable == corev1.DoNotSchedule && c.MaxSkew == 1 && c.TopologyKey == ZoneLabel && matches(c.LabelSelector) && selects(c.LabelSelector, t.Labels) {
			return true
		}
	}
	return false
}

func selects(ls *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(l))
}
