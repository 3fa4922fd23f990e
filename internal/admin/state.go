package admin

import (
	"errors"
	"time"

	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
)

// State is the JSON view of every group: GET /api/v1/state answers it,
// the CLI and the status page read it.
type State struct {
	Groups []GroupState `json:"groups"`
	// Cluster is the replicas' coordination, when there is one.
	Cluster *kube.Status `json:"cluster,omitempty"`
}

// GroupState is one group's servers, active server and history.
type GroupState struct {
	Name    string `json:"name"`
	Mode    string `json:"mode"`
	Active  string `json:"active,omitempty"`
	Epoch   uint64 `json:"epoch"`
	Reason  string `json:"reason,omitempty"`
	Pending string `json:"pendingFailback,omitempty"`
	// PendingAt is when a pending failback with a delay will happen.
	PendingAt *time.Time        `json:"pendingFailbackAt,omitempty"`
	Hold      bool              `json:"operatorHold,omitempty"`
	Revoking  bool              `json:"revoking,omitempty"`
	Fenced    bool              `json:"fenced,omitempty"`
	Failback  string            `json:"failback"`
	Servers   []ServerState     `json:"servers"`
	History   []failover.Switch `json:"history"`
}

// ServerState is one server's health.
type ServerState struct {
	Name       string     `json:"name"`
	Address    string     `json:"address"`
	State      string     `json:"state"`
	Drained    bool       `json:"drained,omitempty"`
	Since      time.Time  `json:"since"`
	Websockets int        `json:"websockets"`
	Pod        string     `json:"pod,omitempty"`
	LastCheck  *CheckView `json:"lastCheck,omitempty"`
	// HeldUntil and HeldReason: a server ejected by its traffic is held
	// down until then whatever its checks say, and why.
	HeldUntil  *time.Time `json:"heldUntil,omitempty"`
	HeldReason string     `json:"heldReason,omitempty"`
}

// CheckView is the latest active check of a server.
type CheckView struct {
	At        time.Time `json:"at"`
	OK        bool      `json:"ok"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latencyMs"`
	Detail    string    `json:"detail,omitempty"`
}

// Errors a Controller wraps (with failover's ErrNoSuchServer,
// ErrServerDown and ErrNothingToDo) for the API to answer with the
// status they mean (statusOf).
var (
	// ErrNoSuchGroup: no group of that name (404).
	ErrNoSuchGroup = errors.New("no such group")
	// ErrConflict: what was asked is in effect already (200, "nothing to do").
	ErrConflict = errors.New("nothing to do")
)
