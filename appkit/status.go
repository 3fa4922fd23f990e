package appkit

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemproxy/tandem/internal/buildinfo"
)

// Status is an instance's view of itself, served on /status. The gateway's
// health check expects 200 and a body containing "version"; any state in
// which the instance must not get traffic answers 503 with the reason.
type Status struct {
	// Version is the app's version; Build identifies the binary (the VCS
	// revision when the build recorded one). Name tells instances apart.
	Version, Build, Name string
	// Epochs, when set, supplies the role and the newest gateway epoch.
	Epochs *Epochs

	started time.Time

	mu       sync.Mutex
	notReady string // why the instance is not ready yet (migrating...)
	refusing string // why it refuses to serve at all (schema too new...)

	schema, known atomic.Int64
}

// NewStatus returns a status that is not ready until SetReady.
func NewStatus(name, version string) *Status {
	return &Status{Version: version, Build: buildID(), Name: name, started: time.Now(), notReady: "starting"}
}

// buildID is the binary's commit as tandem's own binaries say it (the
// commit -ldflags set, else the VCS stamp; 12 characters, "-dirty" for a
// modified tree), else "dev".
func buildID() string {
	if in := buildinfo.Get(); in.Commit != "" {
		return in.Short()
	}
	return "dev"
}

// SetReady marks the instance ready (it keeps refusing if Refuse was called).
func (s *Status) SetReady() {
	s.mu.Lock()
	s.notReady = ""
	s.mu.Unlock()
}

// SetNotReady marks the instance not ready, for reason.
func (s *Status) SetNotReady(reason string) {
	s.mu.Lock()
	s.notReady = reason
	s.mu.Unlock()
}

// Refuse makes the instance refuse all traffic for reason; "" lifts it.
func (s *Status) Refuse(reason string) {
	s.mu.Lock()
	s.refusing = reason
	s.mu.Unlock()
}

// SetSchema records the database's schema version and the newest one this
// binary knows.
func (s *Status) SetSchema(db, known int) {
	s.schema.Store(int64(db))
	s.known.Store(int64(known))
}

// Serving reports whether the instance may serve, and why not.
func (s *Status) Serving() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refusing != "" {
		return false, s.refusing
	}
	if s.notReady != "" {
		return false, s.notReady
	}
	return true, ""
}

// StatusBody is the JSON of /status.
type StatusBody struct {
	Version string `json:"version"`
	Build   string `json:"build"`
	Name    string `json:"name,omitempty"`
	Role    Role   `json:"role"`
	Epoch   uint64 `json:"epoch"`
	Schema  struct {
		Version int64 `json:"version"`
		Binary  int64 `json:"binary"`
	} `json:"schema"`
	Uptime  string `json:"uptime"`
	Started string `json:"started"`
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason,omitempty"`
}

// Body returns what /status says now.
func (s *Status) Body() StatusBody {
	var b StatusBody
	b.Version, b.Build, b.Name = s.Version, s.Build, s.Name
	b.Role = RoleUnknown
	if s.Epochs != nil {
		b.Role, b.Epoch = s.Epochs.Role(), s.Epochs.Newest()
	}
	b.Schema.Version, b.Schema.Binary = s.schema.Load(), s.known.Load()
	b.Uptime = time.Since(s.started).Round(time.Second).String()
	b.Started = s.started.UTC().Format(time.RFC3339)
	b.Ready, b.Reason = s.Serving()
	return b
}

// ServeHTTP serves /status: 200 when serving, else 503 with the reason.
// Both bodies contain "version", so a health check that also expects 200
// tells a refusing instance from a dead one only by its status code.
func (s *Status) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Epochs != nil {
		// The gateway's checks say which role it gives this instance.
		s.Epochs.ObserveCheck(r)
	}
	b := s.Body()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !b.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(b)
}

// Guard answers 503 with the reason to every request while the instance
// is not ready or refuses to serve; paths listed in allow (e.g. "/status",
// which says why itself) pass through.
func (s *Status) Guard(next http.Handler, allow ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, why := s.Serving(); !ok {
			for _, p := range allow {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			w.Header().Set("Retry-After", "2")
			http.Error(w, "service unavailable: "+why, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}
