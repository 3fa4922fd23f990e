package admin

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
)

// TestStateJSON holds the state's JSON on the wire, every field set: the
// CLI, the status page and operators' scripts read it.
func TestStateJSON(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	later := at.Add(10 * time.Second)
	s, ctl := newTestServer(t, "")
	ctl.state = State{
		Groups: []GroupState{{
			Name: "sense", Mode: "failover", Active: "sen1", Epoch: 7, Reason: "sen2 is down",
			Pending: "sen2", PendingAt: &later, Hold: true, Revoking: true, Fenced: true, Failback: "auto after 10s",
			Servers: []ServerState{{
				Name: "sen2", Address: "10.0.0.2:8079", State: "down", Drained: true, Since: at, Websockets: 3, Pod: "ns/sense-0",
				LastCheck: &CheckView{At: at, OK: true, Status: 200, LatencyMS: 1.25, Detail: `{"version":"1"}`},
				HeldUntil: &later, HeldReason: "ejected by its traffic once: held down 10s",
			}},
			History: []failover.Switch{{At: at, Group: "sense", From: "sen2", To: "sen1", Reason: "sen2 is down",
				Kind: failover.KindDown, By: "health", Epoch: 7, Revoking: true}},
		}},
		Cluster: &kube.Status{Identity: "gw-0", Leader: "gw-1", Leading: true, Fenced: true, LastContact: at,
			Replicas: []kube.ReplicaStatus{{Identity: "gw-1", Live: true, Renewed: at, Acked: map[string]uint64{"sense": 7},
				Down: map[string][]string{"sense": {"sen2"}}}}},
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/state", nil))
	const want = `{
  "groups": [
    {
      "name": "sense",
      "mode": "failover",
      "active": "sen1",
      "epoch": 7,
      "reason": "sen2 is down",
      "pendingFailback": "sen2",
      "pendingFailbackAt": "2025-06-01T12:00:10Z",
      "operatorHold": true,
      "revoking": true,
      "fenced": true,
      "failback": "auto after 10s",
      "servers": [
        {
          "name": "sen2",
          "address": "10.0.0.2:8079",
          "state": "down",
          "drained": true,
          "since": "2025-06-01T12:00:00Z",
          "websockets": 3,
          "pod": "ns/sense-0",
          "lastCheck": {
            "at": "2025-06-01T12:00:00Z",
            "ok": true,
            "status": 200,
            "latencyMs": 1.25,
            "detail": "{\"version\":\"1\"}"
          },
          "heldUntil": "2025-06-01T12:00:10Z",
          "heldReason": "ejected by its traffic once: held down 10s"
        }
      ],
      "history": [
        {
          "at": "2025-06-01T12:00:00Z",
          "group": "sense",
          "from": "sen2",
          "to": "sen1",
          "reason": "sen2 is down",
          "kind": "down",
          "by": "health",
          "epoch": 7,
          "revoking": true
        }
      ]
    }
  ],
  "cluster": {
    "identity": "gw-0",
    "leader": "gw-1",
    "leading": true,
    "fenced": true,
    "lastContact": "2025-06-01T12:00:00Z",
    "replicas": [
      {
        "identity": "gw-1",
        "live": true,
        "renewed": "2025-06-01T12:00:00Z",
        "acked": {
          "sense": 7
        },
        "down": {
          "sense": [
            "sen2"
          ]
        }
      }
    ]
  }
}
`
	if got := rec.Body.String(); rec.Code != 200 || got != want {
		t.Errorf("GET /api/v1/state: %d\n%s\nwant\n%s", rec.Code, got, want)
	}
	// Left out when empty: what a group without them, a server never
	// checked or held, and a gateway without a cluster send.
	ctl.state = State{Groups: []GroupState{{Name: "web", Mode: "roundrobin", Failback: "auto",
		Servers: []ServerState{{Name: "a", Address: "a:80", State: "unknown", Since: at}}, History: []failover.Switch{}}}}
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/state", nil))
	const wantEmpty = `{
  "groups": [
    {
      "name": "web",
      "mode": "roundrobin",
      "epoch": 0,
      "failback": "auto",
      "servers": [
        {
          "name": "a",
          "address": "a:80",
          "state": "unknown",
          "since": "2025-06-01T12:00:00Z",
          "websockets": 0
        }
      ],
      "history": []
    }
  ]
}
`
	if got := rec.Body.String(); got != wantEmpty {
		t.Errorf("GET /api/v1/state: %d\n%s\nwant\n%s", rec.Code, got, wantEmpty)
	}
}
