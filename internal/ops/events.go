package ops

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Event is one line of `tandem events`: a Kubernetes Event, or what a
// pod's status says (restarts, a container waiting in back-off, an
// eviction), in one shape.
type Event struct {
	Time time.Time `json:"time,omitzero"`
	Type string    `json:"type"` // Normal or Warning
	// Kind is what happened, in the runbook's words: CrashLoopBackOff,
	// OOMKilled, ProbeFailed, Evicted, ImagePull, FailedScheduling,
	// Restarts, Tandem, or the Event's reason.
	Kind    string `json:"kind"`
	Object  string `json:"object"` // kind/name
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int32  `json:"count,omitempty"`
	Source  string `json:"source"` // the Event's reporter, or "pod status"
}

// Kinds of Event beyond an Event's own reason.
const (
	KindCrashLoop     = "CrashLoopBackOff"
	KindOOMKilled     = "OOMKilled"
	KindProbeFailed   = "ProbeFailed"
	KindEvicted       = "Evicted"
	KindImagePull     = "ImagePull"
	KindFailedSched   = "FailedScheduling"
	KindRestarts      = "Restarts"
	KindTandem        = "Tandem"
	sourcePodStatus   = "pod status"
	tandemDecisionsCM = "-decisions"
)

// tandemReasons are the reasons of tandem's own Events (internal/kube).
var tandemReasons = map[string]bool{"Switched": true, "NoServer": true, "ServerDown": true, "ServerUp": true,
	"LeaderElected": true, "ReplicaFenced": true, "ReplicaUnfenced": true}

// EventsOptions configure Events.
type EventsOptions struct {
	// Component, when set, narrows to it and its pods (and tandem's group
	// Events when it is an instance of a pair).
	Component *Component
	// Since drops what is older (0: everything).
	Since time.Duration
	// CoordNamespace and CoordName locate tandem's group Events (regarding
	// the ConfigMap NAME-decisions).
	CoordNamespace, CoordName string
	Now                       func() time.Time
}

// filter decides which Events concern a component.
type filter struct {
	o    EventsOptions
	ns   string
	pods map[string]bool
}

func (f *filter) match(e *corev1.Event) bool {
	ref := e.InvolvedObject
	isTandem := tandemReasons[e.Reason]
	if isTandem && ref.Kind == "ConfigMap" && ref.Name == f.o.CoordName+tandemDecisionsCM {
		return f.o.Component == nil || f.o.Component.Role() != ""
	}
	c := f.o.Component
	if c == nil {
		return e.Namespace == f.ns
	}
	if e.Namespace != c.Namespace {
		return false
	}
	switch ref.Kind {
	case c.Kind:
		return ref.Name == c.Name
	case "ReplicaSet":
		return c.Kind == KindDeployment && ownedName(ref.Name, c.Name, 1)
	case "Pod":
		if f.pods[ref.Name] {
			return true
		}
		if c.Kind == KindDeployment {
			return ownedName(ref.Name, c.Name, 2)
		}
		return ownedName(ref.Name, c.Name, 1)
	}
	return false
}

// ownedName reports whether name is owner's followed by n generated
// segments (a ReplicaSet: one, a Deployment's pod: two, a StatefulSet's
// pod: its ordinal): how a deleted pod is still told apart from another
// component's whose name shares the prefix.
func ownedName(name, owner string, n int) bool {
	rest, ok := strings.CutPrefix(name, owner+"-")
	return ok && rest != "" && strings.Count(rest, "-") == n-1
}

// Events gathers what happened to a component (or the whole namespace),
// newest first.
func Events(ctx context.Context, cs kubernetes.Interface, ns string, o EventsOptions) ([]Event, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &filter{o: o, ns: ns, pods: map[string]bool{}}
	sel := metav1.ListOptions{}
	if o.Component != nil {
		ns = o.Component.Namespace
		sel.LabelSelector = o.Component.Selector.String()
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	var out []Event
	for i := range pods.Items {
		f.pods[pods.Items[i].Name] = true
		out = append(out, PodEvents(&pods.Items[i])...)
	}
	namespaces := []string{ns}
	if o.CoordNamespace != "" && o.CoordNamespace != ns {
		namespaces = append(namespaces, o.CoordNamespace)
	}
	for _, n := range namespaces {
		evs, err := cs.CoreV1().Events(n).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for i := range evs.Items {
			if f.match(&evs.Items[i]) {
				out = append(out, FromEvent(&evs.Items[i]))
			}
		}
	}
	out = since(out, o.Since, o.Now())
	SortEvents(out)
	return out, nil
}

func since(evs []Event, d time.Duration, now time.Time) []Event {
	if d <= 0 {
		return evs
	}
	cut := now.Add(-d)
	out := evs[:0]
	for _, e := range evs {
		if e.Time.IsZero() || !e.Time.Before(cut) {
			out = append(out, e)
		}
	}
	return out
}

// SortEvents orders newest first.
func SortEvents(evs []Event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.After(evs[j].Time) })
}

// FromEvent reads a Kubernetes Event (core/v1 or events.k8s.io, which the
// API serves as the same object).
func FromEvent(e *corev1.Event) Event {
	out := Event{Type: e.Type, Object: strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name,
		Reason: e.Reason, Message: strings.TrimSpace(e.Message), Count: e.Count, Kind: Classify(e.Reason, e.Message)}
	for _, t := range []time.Time{e.CreationTimestamp.Time, e.FirstTimestamp.Time, e.EventTime.Time, e.LastTimestamp.Time} {
		if t.After(out.Time) {
			out.Time = t
		}
	}
	if s := e.Series; s != nil {
		out.Count = s.Count
		if s.LastObservedTime.After(out.Time) {
			out.Time = s.LastObservedTime.Time
		}
		// client-go's events.k8s.io recorder counts an Event of the same
		// type, reason and object into the series of the first, whatever
		// its message: tandem's later switches keep only that first one's.
		if out.Kind == KindTandem && s.Count > 1 {
			out.Message += fmt.Sprintf(" (+%d later %s Events: their messages are not kept; see `cluster status`)", s.Count-1, e.Reason)
		}
	}
	out.Source = e.ReportingController
	if out.Source == "" {
		out.Source = e.Source.Component
	}
	return out
}

// Classify names what an Event's reason and message tell.
func Classify(reason, msg string) string {
	m := strings.ToLower(msg)
	switch {
	case tandemReasons[reason]:
		return KindTandem
	case reason == "BackOff" && strings.Contains(m, "restarting failed container"), reason == KindCrashLoop:
		return KindCrashLoop
	case reason == "ErrImagePull", reason == "ImagePullBackOff", reason == "InspectFailed", reason == "ErrImageNeverPull",
		(reason == "BackOff" || reason == "Failed") && strings.Contains(m, "image"):
		return KindImagePull
	case reason == "OOMKilling", strings.Contains(m, "oomkilled"):
		return KindOOMKilled
	case reason == "Unhealthy", reason == "ProbeWarning":
		return KindProbeFailed
	case reason == "Evicted", reason == "Preempting", reason == "TaintManagerEviction", reason == "EvictionThresholdMet":
		return KindEvicted
	case reason == "FailedScheduling":
		return KindFailedSched
	}
	return reason
}

// PodEvents is what a pod's status tells that Events may not (or no longer)
// say: each container's restarts with its last termination, a container
// waiting in back-off or on its image, an eviction.
func PodEvents(p *corev1.Pod) []Event {
	var out []Event
	obj := "pod/" + p.Name
	if p.Status.Reason == "Evicted" || p.Status.Reason == "Preempting" {
		out = append(out, Event{Time: podTime(p), Type: corev1.EventTypeWarning, Kind: KindEvicted, Object: obj,
			Reason: p.Status.Reason, Message: p.Status.Message, Source: sourcePodStatus})
	}
	all := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range all {
		last := cs.LastTerminationState.Terminated
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			e := Event{Type: corev1.EventTypeWarning, Kind: Classify(w.Reason, w.Message), Object: obj, Reason: w.Reason,
				Message: fmt.Sprintf("container %s waiting: %s", cs.Name, w.Reason), Source: sourcePodStatus}
			if w.Message != "" {
				e.Message += ": " + w.Message
			}
			if last != nil {
				e.Time = last.FinishedAt.Time
			} else {
				e.Time = podTime(p)
			}
			out = append(out, e)
		}
		if cs.RestartCount == 0 {
			continue
		}
		e := Event{Type: corev1.EventTypeWarning, Kind: KindRestarts, Object: obj, Reason: "Restarted", Count: cs.RestartCount,
			Source: sourcePodStatus, Message: fmt.Sprintf("container %s restarted %d times", cs.Name, cs.RestartCount)}
		if last != nil {
			e.Reason, e.Time = last.Reason, last.FinishedAt.Time
			e.Message += fmt.Sprintf("; last terminated %s (exit %d) at %s", orDash(last.Reason), last.ExitCode, last.FinishedAt.UTC().Format(time.RFC3339))
			if last.Reason == "OOMKilled" {
				e.Kind = KindOOMKilled
			}
		}
		out = append(out, e)
	}
	return out
}

func podTime(p *corev1.Pod) time.Time {
	t := p.CreationTimestamp.Time
	for _, c := range p.Status.Conditions {
		if c.LastTransitionTime.After(t) {
			t = c.LastTransitionTime.Time
		}
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WatchEvents calls emit with each new Event that concerns the component
// (and each change of a pod's restarts or waiting state) until ctx ends.
func WatchEvents(ctx context.Context, cs kubernetes.Interface, ns string, o EventsOptions, emit func(Event)) error {
	if o.Component != nil {
		ns = o.Component.Namespace
	}
	f := &filter{o: o, ns: ns, pods: map[string]bool{}}
	sel := metav1.ListOptions{}
	if o.Component != nil {
		sel.LabelSelector = o.Component.Selector.String()
	}
	namespaces := []string{ns}
	if o.CoordNamespace != "" && o.CoordNamespace != ns {
		namespaces = append(namespaces, o.CoordNamespace)
	}
	type source struct {
		open func(rv string) (watch.Interface, error)
		rv   string
	}
	var sources []*source
	pl, err := cs.CoreV1().Pods(ns).List(ctx, sel)
	if err != nil {
		return err
	}
	seen := map[string]string{} // pod/container -> what was last said
	note := func(p *corev1.Pod, say bool) {
		f.pods[p.Name] = true
		for _, e := range PodEvents(p) {
			key := e.Object + "/" + e.Kind + "/" + e.Message
			k := e.Object + "/" + e.Kind
			if seen[k] != key {
				seen[k] = key
				if say {
					emit(e)
				}
			}
		}
	}
	for i := range pl.Items {
		note(&pl.Items[i], false)
	}
	sources = append(sources, &source{rv: pl.ResourceVersion, open: func(rv string) (watch.Interface, error) {
		o := sel
		o.ResourceVersion = rv
		return cs.CoreV1().Pods(ns).Watch(ctx, o)
	}})
	for _, n := range namespaces {
		el, err := cs.CoreV1().Events(n).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		sources = append(sources, &source{rv: el.ResourceVersion, open: func(rv string) (watch.Interface, error) {
			return cs.CoreV1().Events(n).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
		}})
	}
	type item struct {
		src *source
		ev  watch.Event
	}
	ch := make(chan item)
	for _, s := range sources {
		go func() {
			for ctx.Err() == nil {
				w, err := s.open(s.rv)
				if err != nil {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
					continue
				}
				for ev := range w.ResultChan() {
					select {
					case ch <- item{s, ev}:
					case <-ctx.Done():
						w.Stop()
						return
					}
				}
				w.Stop()
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-ch:
			switch obj := it.ev.Object.(type) {
			case *corev1.Pod:
				it.src.rv = obj.ResourceVersion
				if it.ev.Type != watch.Deleted {
					note(obj, true)
				}
			case *corev1.Event:
				it.src.rv = obj.ResourceVersion
				if it.ev.Type == watch.Added || it.ev.Type == watch.Modified {
					if f.match(obj) {
						emit(FromEvent(obj))
					}
				}
			case *metav1.Status:
				// Expired: start again from now.
				it.src.rv = ""
			}
		}
	}
}

// WriteEvents writes events as a table.
func WriteEvents(w io.Writer, evs []Event, now time.Time, paint func(colour, s string) string) {
	tw := newTable(w)
	fmt.Fprintln(tw, "AGE\tTYPE\tKIND\tOBJECT\tCOUNT\tMESSAGE")
	for _, e := range evs {
		fmt.Fprintln(tw, EventRow(e, now, paint))
	}
	tw.Flush()
}

// EventRow is one row of the table (tab-separated).
func EventRow(e Event, now time.Time, paint func(colour, s string) string) string {
	typ, colour := e.Type, ColourPlain
	switch {
	case e.Kind == KindTandem:
		colour = ColourBlue
	case e.Type == corev1.EventTypeWarning:
		colour = ColourRed
	}
	count := ""
	if e.Count > 1 {
		count = fmt.Sprint(e.Count)
	}
	msg := e.Message
	if e.Reason != "" && e.Reason != e.Kind {
		msg = e.Reason + ": " + msg
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", Age(e.Time, now), paint(colour, typ), paint(colour, e.Kind), e.Object, count, msg)
}
