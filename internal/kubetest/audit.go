package kubetest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// auditPolicy has the API server log each list and watch when it arrives
// (one line a request, whatever its length), nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
  - level: Metadata
    verbs: [list, watch]
  - level: None
`

func (c *Cluster) auditLog() string { return filepath.Join(c.dir, "audit.log") }

// ListWatch is one list or watch request the API server received.
type ListWatch struct {
	Verb       string // list or watch
	Resource   string // pods, services, endpointslices...
	Namespace  string
	RequestURI string // with its query: labelSelector, watch, ...
	UserAgent  string
}

// ListWatches returns the lists and watches the API server received so
// far from clients whose User-Agent begins with agent (client-go sends
// rest.Config's UserAgent first).
func (c *Cluster) ListWatches(t testing.TB, agent string) []ListWatch {
	t.Helper()
	f, err := os.Open(c.auditLog())
	if err != nil {
		t.Fatalf("kubetest: the API server's audit log: %v", err)
	}
	defer f.Close()
	var out []ListWatch
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev struct {
			Verb, RequestURI, UserAgent string
			ObjectRef                   struct{ Resource, Namespace string }
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("kubetest: audit log line %q: %v", sc.Text(), err)
		}
		if strings.HasPrefix(ev.UserAgent, agent) {
			out = append(out, ListWatch{Verb: ev.Verb, Resource: ev.ObjectRef.Resource, Namespace: ev.ObjectRef.Namespace,
				RequestURI: ev.RequestURI, UserAgent: ev.UserAgent})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("kubetest: the API server's audit log: %v", err)
	}
	return out
}
