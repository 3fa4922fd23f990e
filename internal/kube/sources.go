package kube

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// sources are the informers of a discovery, one per resource, namespace
// and label selector, made by one factory per namespace and selector.
type sources struct {
	client    kubernetes.Interface
	factories map[string]informers.SharedInformerFactory // by namespace and selector
	// The factory makes one informer per resource, so one per resource,
	// namespace and selector: each informer's source, for the groups it serves.
	byInf map[cache.SharedIndexInformer]*source
	order []*source // as first asked for: a stable start
}

// source is one informer and the groups reading its store.
type source struct {
	inf          cache.SharedIndexInformer
	resource, ns string
	groups       []string
}

func newSources(client kubernetes.Interface) *sources {
	return &sources{client: client, factories: map[string]informers.SharedInformerFactory{}, byInf: map[cache.SharedIndexInformer]*source{}}
}

// use returns the store of the informer of resource (made by inf) in ns
// under selector, shared with every group that asked for the same, and
// counts it among the informers group g waits for.
func (s *sources) use(d *Discovery, g, resource, ns, selector string, inf func(informers.SharedInformerFactory) cache.SharedIndexInformer) cache.Indexer {
	// One selector written two ways ("a=1,b=2", "b=2,a=1") is one set of
	// objects; Validate has parsed it already.
	if sel, err := labels.Parse(selector); err == nil {
		selector = sel.String()
	}
	fk := ns + "\x00" + selector
	f := s.factories[fk]
	if f == nil {
		f = informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
		s.factories[fk] = f
	}
	i := inf(f)
	src := s.byInf[i]
	if src == nil {
		src = &source{inf: i, resource: resource, ns: ns}
		s.byInf[i] = src
		s.order = append(s.order, src)
	}
	src.groups = append(src.groups, g)
	d.hasSynced[g] = append(d.hasSynced[g], src.inf.HasSynced)
	return src.inf.GetIndexer()
}

// start registers each informer's handlers, once whatever the groups
// sharing it (its failures name them all), and starts them.
func (s *sources) start(ctx context.Context, d *Discovery, notify cache.ResourceEventHandler) error {
	for _, src := range s.order {
		if _, err := src.inf.AddEventHandler(notify); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if err := src.inf.SetWatchErrorHandlerWithContext(d.watchFailed(strings.Join(src.groups, ","), src.resource, src.ns)); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
	}
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	return nil
}
