package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Host is what the coordinator needs of the gateway.
type Host interface {
	// Groups returns the failover groups as this replica sees them now.
	Groups() []HostGroup
	// SetDrained applies a published drain or undrain on this replica.
	SetDrained(group, server string, on bool, by string)
}

// HostGroup is one failover group on this replica.
type HostGroup struct {
	Name    string
	Elector *failover.Elector
	Policy  failover.Policy
	Servers []HostServer // priority order
	// ActiveService is namespace/name of the Service whose EndpointSlice
	// follows the active server ("" for none).
	ActiveService string
}

// HostServer is one server's local health.
type HostServer struct {
	Name    string
	Healthy bool
	Since   time.Time
	Reason  string
	Pod     string // namespace/name when discovered, for Events
	PodIP   string
	PodPort int
	// PodAddressType is config.Server's: PodIP's EndpointSlice address
	// type, "" to tell it by PodIP's form.
	PodAddressType string
}

// Coordinator makes the replicas of a gateway agree on each group's active
// server: the Lease holder decides and publishes, every replica (the
// leader too) adopts what is published, publishes its own view and
// acknowledgements, and fences itself when it loses sight of the API.
type Coordinator struct {
	client kubernetes.Interface
	ns, id string
	co     config.Coordination
	host   Host
	log    *slog.Logger
	events *Recorder

	leaseName, cmName, replicaPrefix string

	kickView   chan struct{}
	kickLeader chan struct{}

	mu          sync.Mutex
	leader      string
	prevLeader  string // the leader before the current one, for the Event
	leading     bool
	lastContact time.Time
	fenced      bool
	decisions   map[string]Decision
	cmRV        string
	replicas    map[string]*coordv1.Lease
	asks        map[string]*coordv1.Lease // operators' request Leases (Ask)
	requests    []request
	waiters     map[string]chan result
	agg         map[string]map[string]aggregate // leader: last aggregated views
	liveSeen    map[string]bool                 // leader: replicas live at last look
	silent      map[string]bool                 // leader: replicas it reported fenced
}

// NewCoordinator returns a coordinator for cfg.Kubernetes (which must have
// Coordination set).
func NewCoordinator(client kubernetes.Interface, cfg *config.Config, host Host, log *slog.Logger) *Coordinator {
	k := cfg.Kubernetes
	co := *k.Coordination
	c := &Coordinator{client: client, ns: Namespace(k), id: Identity(k), co: co, host: host, log: log,
		leaseName: co.Name + "-leader", cmName: co.Name + "-decisions", replicaPrefix: co.Name + "-replica-",
		kickView: make(chan struct{}, 1), kickLeader: make(chan struct{}, 1),
		decisions: map[string]Decision{}, replicas: map[string]*coordv1.Lease{}, asks: map[string]*coordv1.Lease{},
		waiters: map[string]chan result{}}
	c.events = NewRecorder(client, c.ns, c.groupRef(), c.id, log)
	return c
}

// Identity is this replica's name.
func (c *Coordinator) Identity() string { return c.id }

// Run coordinates until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	if err := c.ensureDecisions(ctx); err != nil {
		return err
	}
	defer c.events.Shutdown()
	c.events.Start(ctx)

	cmf := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(c.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.cmName).String()
		}))
	cmi := cmf.Core().V1().ConfigMaps().Informer()
	onCM := func(o any) {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			c.adopt(cm, "watch")
		}
	}
	if _, err := cmi.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onCM, UpdateFunc: func(_, o any) { onCM(o) }}); err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	// The replicas' heartbeats, and operators' requests (Ask): each kept in
	// its map by the Lease's name, and a change wakes the leader.
	for _, w := range []struct {
		selector string
		into     map[string]*coordv1.Lease
	}{{"tandem.io/replica-of=" + c.co.Name, c.replicas}, {requestLabel + "=" + c.co.Name, c.asks}} {
		if err := c.watchLeases(ctx, w.selector, w.into); err != nil {
			return err
		}
	}
	cmf.Start(ctx.Done())

	var wg sync.WaitGroup
	wg.Go(func() { c.heartbeat(ctx) })
	wg.Go(func() { c.publishView(ctx) })
	wg.Go(func() { c.elect(ctx) })
	wg.Wait()
	return nil
}

// watchLeases keeps into (under c.mu) holding the Leases selector selects.
func (c *Coordinator) watchLeases(ctx context.Context, selector string, into map[string]*coordv1.Lease) error {
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(c.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	set := func(o any, keep bool) {
		l, ok := o.(*coordv1.Lease)
		if !ok {
			return
		}
		c.mu.Lock()
		if keep {
			into[l.Name] = l
		} else {
			delete(into, l.Name)
		}
		c.mu.Unlock()
		poke(c.kickLeader)
	}
	if _, err := f.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o, true) },
		UpdateFunc: func(_, o any) { set(o, true) },
		DeleteFunc: func(o any) { set(o, false) },
	}); err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	f.Start(ctx.Done())
	return nil
}

func (c *Coordinator) groupRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: c.ns, Name: c.co.Name + "-decisions"}
}

// ensureDecisions creates the decisions ConfigMap if it is missing.
func (c *Coordinator) ensureDecisions(ctx context.Context) error {
	for {
		_, err := c.client.CoreV1().ConfigMaps(c.ns).Get(ctx, c.cmName, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if apierrors.IsNotFound(err) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: c.cmName, Namespace: c.ns,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "tandem"}}, Data: map[string]string{}}
			_, err = c.client.CoreV1().ConfigMaps(c.ns).Create(ctx, cm, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return nil
			}
		}
		if !refused(c.log, "coordination: read the decisions", err, "get and create on configmaps", "configmap", c.ns+"/"+c.cmName) {
			c.log.Warn("coordination: cannot read the decisions; retrying", "configmap", c.ns+"/"+c.cmName, "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.co.Heartbeat.D()):
		}
	}
}

// adopt installs the published decisions on this replica's electors. Any
// decision read from the API is fresh contact: it ends a fence.
func (c *Coordinator) adopt(cm *corev1.ConfigMap, how string) {
	ds, err := DecodeDecisions(cm.Data)
	if err != nil {
		c.log.Error("coordination: unreadable decision; keeping the one in force", "error", err)
		return
	}
	c.mu.Lock()
	if newerRV(cm.ResourceVersion, c.cmRV) || c.cmRV == "" {
		c.decisions, c.cmRV = ds, cm.ResourceVersion
	} else {
		ds = c.decisions
	}
	wasFenced := c.fenced
	c.lastContact, c.fenced = time.Now(), false
	c.mu.Unlock()
	if wasFenced {
		c.log.Warn("coordination: unfenced: the coordination state is readable again", "via", how)
		c.mu.Lock()
		leading := c.leading
		c.mu.Unlock()
		if leading {
			// Nobody else could tell of the leader's own fence.
			c.events.Group(corev1.EventTypeWarning, ReasonReplicaFenced, fmt.Sprintf(
				"replica %s (the leader) lost the API for more than %v: it fenced itself and sent to no server", c.id, c.co.FenceAfter.D()))
			c.events.Group(corev1.EventTypeNormal, ReasonReplicaUnfenced, fmt.Sprintf("replica %s is back and follows the published decisions", c.id))
		}
	}
	changed := false
	for _, g := range c.host.Groups() {
		d, ok := ds[g.Name]
		if !ok {
			continue
		}
		if g.Elector.Adopt(d.published()) {
			changed = true
		}
		for _, s := range g.Servers {
			c.host.SetDrained(g.Name, s.Name, d.drained(s.Name), "published by leader "+d.Leader)
		}
		c.wake(d)
	}
	if changed || wasFenced {
		poke(c.kickView) // acknowledge at once
	}
}

// wake hands operator requests their outcomes.
func (c *Coordinator) wake(d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.waiters {
		if r, ok := d.outcome(id); ok {
			ch <- r
			delete(c.waiters, id)
			c.dropRequestLocked(id)
		}
	}
}

func (c *Coordinator) dropRequestLocked(id string) {
	out := c.requests[:0]
	for _, r := range c.requests {
		if r.ID != id {
			out = append(out, r)
		}
	}
	c.requests = out
}

// newerRV compares resourceVersions, which etcd makes increasing integers.
func newerRV(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// heartbeat reads the decisions with a quorum read every heartbeat, and
// fences this replica when it could not for longer than fenceAfter.
func (c *Coordinator) heartbeat(ctx context.Context) {
	read := time.NewTicker(c.co.Heartbeat.D())
	defer read.Stop()
	check := time.NewTicker(c.co.Heartbeat.D() / 4)
	defer check.Stop()
	reads := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reads:
			}
			cm, err := c.client.CoreV1().ConfigMaps(c.ns).Get(ctx, c.cmName, metav1.GetOptions{})
			if err == nil {
				c.adopt(cm, "read")
			} else if ctx.Err() == nil && !refused(c.log, "coordination", err, "get on configmaps/"+c.cmName) {
				c.log.Debug("coordination: cannot read the decisions", "error", err)
			}
		}
	}()
	poke(reads)
	for {
		select {
		case <-ctx.Done():
			return
		case <-read.C:
			poke(reads)
		case <-check.C:
			c.mu.Lock()
			lost := !c.lastContact.IsZero() && time.Since(c.lastContact) > c.co.FenceAfter.D() && !c.fenced
			if lost {
				c.fenced = true
			}
			since := c.lastContact
			c.mu.Unlock()
			if lost {
				c.log.Error("coordination: fenced: the coordination state could not be read; sending to no server until a fresh decision",
					"since", since, "fenceAfter", c.co.FenceAfter.D())
				for _, g := range c.host.Groups() {
					cur := g.Elector.Current()
					g.Elector.Adopt(failover.Published{Committed: failover.Committed{Active: cur.Active, Epoch: cur.Epoch, Revoking: cur.Revoking, Fenced: true}})
				}
			}
		}
	}
}

// ViewChanged is the elector's news of a local health change: publish now.
func (c *Coordinator) ViewChanged(string, string) {
	poke(c.kickView)
	poke(c.kickLeader)
}

// Request carries an operator action through the leader and waits for its
// outcome.
func (c *Coordinator) Request(group string, a failover.Action) error {
	var b [8]byte
	rand.Read(b[:])
	rq := request{ID: hex.EncodeToString(b[:]), Group: group, Action: a}
	ch := make(chan result, 1)
	c.mu.Lock()
	c.requests = append(c.requests, rq)
	c.waiters[rq.ID] = ch
	c.mu.Unlock()
	poke(c.kickView)
	t := time.NewTimer(c.co.LeaseDuration.D() + c.co.RevokeTimeout.D())
	defer t.Stop()
	select {
	case r := <-ch:
		return errOf(r)
	case <-t.C:
		c.mu.Lock()
		delete(c.waiters, rq.ID)
		c.dropRequestLocked(rq.ID)
		leader := c.leader
		c.mu.Unlock()
		return fmt.Errorf("no answer from the leader (%q) in time: the action was not carried out", leader)
	}
}

// Drain asks the leader to drain or undrain a server on every replica.
func (c *Coordinator) Drain(group, server, by string, on bool) error {
	kind := actionUndrain
	if on {
		kind = actionDrain
	}
	return c.Request(group, failover.Action{Kind: kind, Server: server, By: by})
}

// publishView renews this replica's Lease with its view: at every
// heartbeat, and at once when its view or acknowledgements change.
func (c *Coordinator) publishView(ctx context.Context) {
	t := time.NewTicker(c.co.Heartbeat.D())
	defer t.Stop()
	var lease *coordv1.Lease
	for {
		var err error
		lease, err = c.writeLease(ctx, lease)
		if err != nil && ctx.Err() == nil {
			if !refused(c.log, "coordination", err, "get, create and update on coordination.k8s.io leases", "lease", c.replicaPrefix+c.id) {
				c.log.Debug("coordination: cannot renew this replica's lease", "error", err)
			}
			lease = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kickView:
		}
	}
}

func (c *Coordinator) view() ReplicaView {
	v := ReplicaView{Groups: map[string]groupView{}}
	for _, g := range c.host.Groups() {
		gv := groupView{Ack: g.Elector.Epoch(), Servers: map[string]serverView{}}
		for _, s := range g.Servers {
			gv.Servers[s.Name] = serverView{Up: s.Healthy, Since: s.Since, Reason: s.Reason}
		}
		v.Groups[g.Name] = gv
	}
	c.mu.Lock()
	v.Requests = append([]request(nil), c.requests...)
	c.mu.Unlock()
	return v
}

func (c *Coordinator) writeLease(ctx context.Context, lease *coordv1.Lease) (*coordv1.Lease, error) {
	leases := c.client.CoordinationV1().Leases(c.ns)
	name := c.replicaPrefix + c.id
	if lease == nil {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			lease = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns,
				Labels: map[string]string{"tandem.io/replica-of": c.co.Name}}}
		case err != nil:
			return nil, err
		default:
			lease = l
		}
	}
	b, _ := json.Marshal(c.view())
	next := lease.DeepCopy()
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Annotations[viewAnnotation] = string(b)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(math.Ceil(c.co.FenceAfter.D().Seconds()))
	next.Spec.HolderIdentity, next.Spec.LeaseDurationSeconds, next.Spec.RenewTime = &c.id, &secs, &now
	var out *coordv1.Lease
	var err error
	if next.ResourceVersion == "" {
		out, err = leases.Create(ctx, next, metav1.CreateOptions{})
	} else {
		out, err = leases.Update(ctx, next, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// elect campaigns for the leader Lease for as long as ctx lasts; while
// this replica leads, it decides.
//
// The leader Lease goes through loggedLock, which names a refused verb.
func (c *Coordinator) elect(ctx context.Context) {
	lock := &loggedLock{LeaseLock: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: c.leaseName, Namespace: c.ns},
		Client:     c.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.id},
	}, log: c.log}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   c.co.LeaseDuration.D(),
			RenewDeadline:   c.co.RenewDeadline.D(),
			RetryPeriod:     c.co.RetryPeriod.D(),
			ReleaseOnCancel: true,
			Name:            c.leaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: c.lead,
				OnStoppedLeading: func() {
					c.mu.Lock()
					c.leading = false
					c.mu.Unlock()
					c.log.Warn("coordination: no longer the leader", "identity", c.id)
				},
				OnNewLeader: func(id string) {
					c.mu.Lock()
					if id != c.leader {
						c.prevLeader, c.leader = c.leader, id
					}
					c.mu.Unlock()
					c.log.Info("coordination: leader", "leader", id, "self", id == c.id)
				},
			},
		})
		if err != nil {
			c.log.Error("coordination: leader election", "error", err)
			return
		}
		le.Run(ctx)
	}
}

// lead decides for every group while this replica holds the leader Lease.
func (c *Coordinator) lead(ctx context.Context) {
	c.mu.Lock()
	prev := c.leader
	if prev == c.id {
		prev = c.prevLeader
	}
	c.leading, c.leader = true, c.id
	c.agg, c.liveSeen = nil, nil
	c.mu.Unlock()
	msg := fmt.Sprintf("replica %s leads the gateway", c.id)
	if prev != "" && prev != c.id {
		msg += " (was " + prev + ")"
	}
	c.log.Warn("coordination: "+msg, "identity", c.id)
	c.mu.Lock()
	ds := c.decisions
	c.mu.Unlock()
	slices := newSliceSync(c)
	slices.sync(ctx, ds) // a new leader checks them once
	c.events.Group(corev1.EventTypeNormal, ReasonLeaderElected, msg)
	tick := time.NewTicker(c.co.Heartbeat.D() / 2)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := c.decide(ctx, slices)
		if wait <= 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.kickLeader:
		case <-tick.C:
		case <-timer.C:
		}
	}
}

// decide runs the leader's decision for every group and publishes what
// changed, and keeps the active EndpointSlices on what is published; it
// returns when it next needs to look on its own (0: none).
func (c *Coordinator) decide(ctx context.Context, slices *sliceSync) time.Duration {
	now := time.Now()
	c.mu.Lock()
	prev := c.decisions
	rv := c.cmRV
	views := c.liveViewsLocked(now)
	asks := c.freshAsksLocked(now)
	fenced := c.fenced
	c.mu.Unlock()
	// Decide only on fresh information: this replica renews its own Lease
	// every heartbeat, so when its cache shows that Lease expired, the
	// cache itself is stale (the watch broke) and every other view with it.
	// A leader that just came back from a cut would otherwise see every
	// replica silent and every server unchecked.
	self := false
	for _, v := range views {
		self = self || v.identity == c.id
	}
	if fenced || !self {
		return c.co.Heartbeat.D()
	}
	c.noteFences(views)
	next := map[string]Decision{}
	var wake time.Duration
	changed := false
	var news []func()
	for _, g := range c.host.Groups() {
		names := make([]string, len(g.Servers))
		pods := map[string]string{}
		for i, s := range g.Servers {
			names[i] = s.Name
			pods[s.Name] = s.Pod
		}
		in := groupInput{group: g.Name, servers: names, policy: g.Policy, prev: prev[g.Name], views: views, asks: asks,
			leader: c.id, revoke: c.co.RevokeTimeout.D(), now: now}
		d, agg := decideGroup(in)
		next[g.Name] = d
		if encodeDecision(d) != encodeDecision(prev[g.Name]) {
			changed = true
			news = append(news, c.newsOf(g.Name, prev[g.Name], d))
		}
		news = append(news, c.serverNews(g.Name, agg, pods))
		consider := func(at time.Time) {
			if w := at.Sub(now); w > 0 && (wake == 0 || w < wake) {
				wake = w
			}
		}
		if !d.Recheck.IsZero() {
			consider(d.Recheck)
		}
		if d.Revoking {
			consider(d.RevokedAt.Add(c.co.RevokeTimeout.D()))
		}
	}
	if !changed {
		for _, n := range news {
			n()
		}
		slices.sync(ctx, prev)
		return wake
	}
	data := map[string]string{}
	for g, d := range next {
		data[g] = encodeDecision(d)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: c.cmName, Namespace: c.ns, ResourceVersion: rv,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "tandem"}}, Data: data}
	out, err := c.client.CoreV1().ConfigMaps(c.ns).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsConflict(err) {
			// Someone wrote since we read (a former leader): read again and decide anew.
			if fresh, gerr := c.client.CoreV1().ConfigMaps(c.ns).Get(ctx, c.cmName, metav1.GetOptions{}); gerr == nil {
				c.adopt(fresh, "read")
			}
			poke(c.kickLeader)
		} else if ctx.Err() == nil && !refused(c.log, "coordination: publish the decision", err, "update on configmaps", "configmap", c.ns+"/"+c.cmName) {
			c.log.Warn("coordination: cannot publish the decision", "error", err)
		}
		return c.co.RetryPeriod.D()
	}
	for _, n := range news {
		n()
	}
	c.adopt(out, "own write")
	slices.sync(ctx, next)
	return wake
}

// liveViewsLocked returns the views of replicas whose heartbeat is fresh.
func (c *Coordinator) liveViewsLocked(now time.Time) []liveView {
	var out []liveView
	for _, l := range c.replicas {
		if !LeaseLive(l, now) {
			continue
		}
		var v ReplicaView
		if err := json.Unmarshal([]byte(l.Annotations[viewAnnotation]), &v); err != nil {
			continue
		}
		out = append(out, liveView{identity: *l.Spec.HolderIdentity, view: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].identity < out[j].identity })
	return out
}

// LeaseLive reports whether a Lease's holder renewed it within its duration.
func LeaseLive(l *coordv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return false
	}
	return now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// noteFences tells, as Events, of replicas that went silent (and so fenced
// themselves) or came back.
func (c *Coordinator) noteFences(views []liveView) {
	live := map[string]bool{}
	for _, v := range views {
		live[v.identity] = true
	}
	c.mu.Lock()
	before := c.liveSeen
	c.liveSeen = live
	if c.silent == nil {
		c.silent = map[string]bool{}
	}
	var fenced, back []string
	for id := range before {
		if !live[id] && !c.silent[id] {
			c.silent[id] = true
			fenced = append(fenced, id)
		}
	}
	for id := range live {
		if c.silent[id] {
			delete(c.silent, id)
			back = append(back, id)
		}
	}
	c.mu.Unlock()
	for _, id := range fenced {
		c.events.Group(corev1.EventTypeWarning, ReasonReplicaFenced,
			fmt.Sprintf("replica %s lost the API for more than %v: it fences itself and sends to no server", id, c.co.FenceAfter.D()))
	}
	for _, id := range back {
		c.events.Group(corev1.EventTypeNormal, ReasonReplicaUnfenced, fmt.Sprintf("replica %s is back and follows the published decisions", id))
	}
}

// newsOf returns the logging and Events for a published change.
func (c *Coordinator) newsOf(group string, prev, d Decision) func() {
	return func() {
		switch {
		case d.Revoking && (!prev.Revoking || prev.Epoch != d.Epoch):
			c.log.Warn("coordination: revoking", "group", group, "from", d.Last.From, "to", d.To, "epoch", d.Epoch, "reason", d.Last.Reason)
		case !d.Revoking && (d.Active != prev.Active || prev.Revoking):
			msg := fmt.Sprintf("%s: %s -> %s, %s, epoch %d", group, orNone(d.Last.From), orNone(d.Active), d.Last.Reason, d.Epoch)
			typ, reason := corev1.EventTypeNormal, ReasonSwitched
			if d.Active == "" {
				typ, reason = corev1.EventTypeWarning, ReasonNoServer
			} else if d.Last.Kind == failover.KindDown {
				typ = corev1.EventTypeWarning
			}
			c.events.Group(typ, reason, msg)
		}
	}
}

// serverNews returns the Events for servers whose aggregated health changed.
func (c *Coordinator) serverNews(group string, agg map[string]aggregate, pods map[string]string) func() {
	c.mu.Lock()
	if c.agg == nil {
		c.agg = map[string]map[string]aggregate{}
	}
	before, known := c.agg[group]
	c.agg[group] = agg
	c.mu.Unlock()
	return func() {
		if !known {
			return
		}
		for name, a := range agg {
			b, ok := before[name]
			if !ok || a.up == b.up {
				continue
			}
			if a.up {
				c.events.Server(pods[name], corev1.EventTypeNormal, ReasonServerUp, fmt.Sprintf("%s: %s is up", group, name))
			} else {
				c.events.Server(pods[name], corev1.EventTypeWarning, ReasonServerDown, fmt.Sprintf("%s: %s is down: %s", group, name, a.reason))
			}
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Status is the coordination as this replica sees it.
type Status struct {
	Identity    string          `json:"identity"`
	Leader      string          `json:"leader"`
	Leading     bool            `json:"leading"`
	Fenced      bool            `json:"fenced"`
	LastContact time.Time       `json:"lastContact"`
	Replicas    []ReplicaStatus `json:"replicas"`
}

// ReplicaStatus is one replica's published heartbeat and view.
type ReplicaStatus struct {
	Identity string               `json:"identity"`
	Live     bool                 `json:"live"`
	Renewed  time.Time            `json:"renewed"`
	Acked    map[string]uint64    `json:"acked"`
	Down     map[string][]string  `json:"down,omitempty"` // servers it sees down, by group
	Servers  map[string]groupView `json:"-"`
}

// Status reports the leader, this replica's fence and every replica's view.
func (c *Coordinator) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Identity: c.id, Leader: c.leader, Leading: c.leading, Fenced: c.fenced, LastContact: c.lastContact}
	now := time.Now()
	for _, l := range c.replicas {
		if l.Spec.HolderIdentity == nil {
			continue
		}
		rs := ReplicaStatus{Identity: *l.Spec.HolderIdentity, Live: LeaseLive(l, now), Acked: map[string]uint64{}}
		if l.Spec.RenewTime != nil {
			rs.Renewed = l.Spec.RenewTime.Time
		}
		var v ReplicaView
		if json.Unmarshal([]byte(l.Annotations[viewAnnotation]), &v) == nil {
			for g, gv := range v.Groups {
				rs.Acked[g] = gv.Ack
				for n, sv := range gv.Servers {
					if !sv.Up {
						if rs.Down == nil {
							rs.Down = map[string][]string{}
						}
						rs.Down[g] = append(rs.Down[g], n)
					}
				}
				sort.Strings(rs.Down[g])
			}
		}
		st.Replicas = append(st.Replicas, rs)
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].Identity < st.Replicas[j].Identity })
	return st
}

// Ready reports whether this replica follows a published decision for
// every failover group.
func (c *Coordinator) Ready() error {
	c.mu.Lock()
	fenced, seen, ds := c.fenced, !c.lastContact.IsZero(), c.decisions
	c.mu.Unlock()
	if !seen {
		return errors.New("coordination: decisions not read yet")
	}
	if fenced {
		return errors.New("coordination: fenced (the API is out of reach)")
	}
	for _, g := range c.host.Groups() {
		if _, ok := ds[g.Name]; !ok {
			return fmt.Errorf("coordination: no decision published for group %q yet", g.Name)
		}
	}
	return nil
}

// loggedLock is the leader Lease lock, logging what the API refuses:
// client-go's elector logs a failed acquire or renew through klog only.
type loggedLock struct {
	*resourcelock.LeaseLock
	log *slog.Logger
}

func (l *loggedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, b, err := l.LeaseLock.Get(ctx)
	refused(l.log, "coordination", err, "get on coordination.k8s.io leases", "lease", l.Describe())
	return r, b, err
}

func (l *loggedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Create(ctx, r)
	refused(l.log, "coordination", err, "create on coordination.k8s.io leases", "lease", l.Describe())
	return err
}

func (l *loggedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Update(ctx, r)
	refused(l.log, "coordination", err, "update on coordination.k8s.io leases", "lease", l.Describe())
	return err
}
