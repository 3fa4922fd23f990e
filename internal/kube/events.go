package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
)

// Reasons of tandem's Events, for `kubectl get events --field-selector reason=...`.
const (
	ReasonSwitched        = "Switched"        // a group's active server changed
	ReasonNoServer        = "NoServer"        // a group has no available server
	ReasonServerDown      = "ServerDown"      // a server failed, as the replicas see it
	ReasonServerUp        = "ServerUp"        // a server is healthy again
	ReasonLeaderElected   = "LeaderElected"   // a replica took the lead
	ReasonReplicaFenced   = "ReplicaFenced"   // a replica lost the API and sends nowhere
	ReasonReplicaUnfenced = "ReplicaUnfenced" // a replica follows the decisions again
)

// Event rate limit per object and reason: a flapping server makes a few
// Events and then one every eventRefill, each saying how many were
// suppressed. (client-go's events.k8s.io recorder folds Events of the same
// type, reason, action and object into one series, keeping the first
// message: the action carries a digest of the message, so only identical
// messages fold and every switch keeps its own line.)
const (
	eventBurst  = 5
	eventRefill = 30 * time.Second
)

// Recorder writes tandem's Events through client-go's events.k8s.io
// broadcaster. Only the leader calls it.
type Recorder struct {
	b     events.EventBroadcaster
	rec   events.EventRecorder
	group *corev1.ObjectReference
	id    string
	log   *slog.Logger

	lim *limiter
}

// NewRecorder returns a recorder whose group Events regard group.
func NewRecorder(client kubernetes.Interface, ns string, group *corev1.ObjectReference, id string, log *slog.Logger) *Recorder {
	b := events.NewBroadcaster(&loggingSink{EventSink: &events.EventSinkImpl{Interface: client.EventsV1()}, log: log})
	return &Recorder{b: b, rec: b.NewRecorder(scheme.Scheme, "tandem.io/gateway"), group: group, id: id, log: log,
		lim: newLimiter(eventBurst, eventRefill)}
}

// loggingSink logs an Event the API refused: client-go's broadcaster drops
// it with a line through klog only, so a Role without create or patch on
// events.k8s.io Events would leave `kubectl get events` silent and the
// gateway's own log too.
type loggingSink struct {
	events.EventSink
	log *slog.Logger
}

func (s *loggingSink) Create(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	out, err := s.EventSink.Create(ctx, e)
	s.refused("create", e, err)
	return out, err
}

func (s *loggingSink) Patch(ctx context.Context, old *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	out, err := s.EventSink.Patch(ctx, old, data)
	s.refused("patch", old, err)
	return out, err
}

func (s *loggingSink) refused(verb string, e *eventsv1.Event, err error) {
	refused(s.log, "events", err, verb+" on events.k8s.io events", "reason", e.Reason, "namespace", e.Namespace)
}

// Start sends the Events until ctx ends. It returns at once, once the
// broadcaster listens: an Event recorded before that would be dropped.
func (r *Recorder) Start(ctx context.Context) {
	if err := r.b.StartRecordingToSinkWithContext(ctx); err != nil {
		r.log.Error("events: cannot record", "error", err)
	}
}

// Shutdown flushes and stops the broadcaster.
func (r *Recorder) Shutdown() { r.b.Shutdown() }

// Group records an Event about a group (or the gateway as a whole).
func (r *Recorder) Group(typ, reason, msg string) { r.emit(r.group, typ, reason, msg) }

// Server records an Event regarding the server's pod, namespace/name, or
// the group object for a server from the config file.
func (r *Recorder) Server(pod, typ, reason, msg string) {
	ns, name, ok := strings.Cut(pod, "/")
	if !ok {
		r.emit(r.group, typ, reason, msg)
		return
	}
	r.emit(&corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: name}, typ, reason, msg)
}

func (r *Recorder) emit(ref *corev1.ObjectReference, typ, reason, msg string) {
	ok, suppressed := r.lim.allow(ref.Namespace + "/" + ref.Name + "/" + reason)
	if !ok {
		return
	}
	if suppressed > 0 {
		msg += fmt.Sprintf(" (%d similar events suppressed)", suppressed)
	}
	note := msg + " [by " + r.id + "]"
	sum := sha256.Sum256([]byte(note))
	r.rec.Eventf(ref, nil, typ, reason, "Coordinate-"+hex.EncodeToString(sum[:4]), "%s", note)
}
