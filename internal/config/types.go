// Package config owns tandem's configuration: its types, their defaults,
// parsing from YAML with positions, and validation that lists every problem
// by file, line and field before anything starts.
package config

import "time"

// Config is one immutable snapshot of the gateway's configuration. Once
// returned by Load it is never mutated: reloads build a new one.
type Config struct {
	// Engine is the HTTP/1.1 code that serves: tandem's own (EngineTandem,
	// the default) or net/http's server and Transport (EngineNetHTTP), a
	// kill switch should a parser bug be found in tandem's. Changing it
	// takes a restart.
	Engine         string     `yaml:"engine"`
	Listeners      []Listener `yaml:"listeners"`
	Admin          Admin      `yaml:"admin"`
	Log            Log        `yaml:"log"`
	Limits         Limits     `yaml:"limits"`
	TrustedProxies []string   `yaml:"trustedProxies"`
	Groups         []Group    `yaml:"groups"`
	// Kubernetes connects the gateway to a cluster: servers discovered
	// there, and several replicas agreeing on one active server.
	Kubernetes *Kubernetes `yaml:"kubernetes"`

	// File is the path the config was read from, for messages.
	File string `yaml:"-"`
}

// Engines: what serves the listeners and talks to the servers.
const (
	// EngineTandem: tandem's own HTTP/1.1 server on every listener
	// (internal/h1, which hands unusual requests and HTTP/2 to net/http's)
	// and its own client towards the servers (internal/upstream).
	EngineTandem = "tandem"
	// EngineNetHTTP: net/http's http.Server alone on every listener and
	// net/http's http.Transport towards the servers, with the same limits.
	EngineNetHTTP = "net/http"
)

// Listener is one public socket: plain HTTP, HTTPS, or HTTP that only redirects to HTTPS.
type Listener struct {
	Name          string `yaml:"name"`
	Address       string `yaml:"address"`
	TLS           *TLS   `yaml:"tls"`
	HSTS          *HSTS  `yaml:"hsts"`
	RedirectHTTPS bool   `yaml:"redirectHTTPS"`
	// HTTPSPort is the port written in redirects; 0 means the port of the
	// first TLS listener (omitted when it is 443).
	HTTPSPort int `yaml:"httpsPort"`
}

// TLS names the certificate and key files of an HTTPS listener.
type TLS struct {
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	MinVersion string `yaml:"minVersion"` // "1.2" (default) or "1.3"
}

// HSTS configures the Strict-Transport-Security header on HTTPS responses.
type HSTS struct {
	MaxAge            int  `yaml:"maxAge"`
	IncludeSubDomains bool `yaml:"includeSubDomains"`
	Preload           bool `yaml:"preload"`
	// Header, when set, is sent verbatim instead of the value built from the fields above.
	Header string `yaml:"header"`
}

// Admin is the control listener: state, actions. Loopback only by default.
type Admin struct {
	Address string `yaml:"address"`
	// TokenFile holds a bearer token required for every admin call; required
	// when Address is not loopback.
	TokenFile string `yaml:"tokenFile"`
}

// Log selects the structured log format and level.
type Log struct {
	Format string `yaml:"format"` // json | text
	Level  string `yaml:"level"`  // debug | info | warn | error
	Access bool   `yaml:"access"` // one line per request
}

// Limits protect the public listeners.
type Limits struct {
	MaxHeaderBytes    Size     `yaml:"maxHeaderBytes"`
	ReadHeaderTimeout Duration `yaml:"readHeaderTimeout"`
	IdleTimeout       Duration `yaml:"idleTimeout"`
	// MaxConnections bounds the client connections open on each listener:
	// at the bound, new ones wait in the kernel's backlog (as HAProxy's
	// maxconn), so a flood of idle connections cannot exhaust the fds.
	MaxConnections int `yaml:"maxConnections"`
	// Drain is how long SIGTERM waits for in-flight requests before closing.
	Drain Duration `yaml:"drain"`
}

// Kubernetes is how the gateway reaches a cluster and, with Coordination,
// how its replicas agree.
type Kubernetes struct {
	// Kubeconfig is a kubeconfig file (outside the cluster); "" uses the
	// in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
	// Namespace holds the coordination objects and Events; default: the
	// pod's namespace (POD_NAMESPACE) or "default".
	Namespace string `yaml:"namespace"`
	// Identity names this replica; default: POD_NAME or the host name.
	Identity string `yaml:"identity"`
	// Coordination, when set, makes the replicas agree on one active server
	// per group through a Lease: the leader decides, everyone follows.
	Coordination *Coordination `yaml:"coordination"`
}

// Coordination bounds the replicas' agreement (see docs/kubernetes.md).
type Coordination struct {
	// Name prefixes the coordination objects (Lease, ConfigMap, replica Leases).
	Name          string   `yaml:"name"`
	LeaseDuration Duration `yaml:"leaseDuration"`
	RenewDeadline Duration `yaml:"renewDeadline"`
	RetryPeriod   Duration `yaml:"retryPeriod"`
	// Heartbeat is how often a replica reads the decisions and renews its view.
	Heartbeat Duration `yaml:"heartbeat"`
	// FenceAfter: a replica that could not read the coordination state for
	// this long sends to no server until it sees a fresh decision.
	FenceAfter Duration `yaml:"fenceAfter"`
	// RevokeTimeout bounds the first phase of a switch: how long the leader
	// waits for every live replica to acknowledge the revocation.
	RevokeTimeout Duration `yaml:"revokeTimeout"`
	// HoldRequests bounds how long a request waits for a decision while its
	// group's active server is being switched.
	HoldRequests Duration `yaml:"holdRequests"`
}

// Discovery takes a group's servers from the cluster: the pods of a label
// selector, or the endpoints of a Service's EndpointSlices.
type Discovery struct {
	Namespace string `yaml:"namespace"`
	// Selector is a label selector of the group's pods, e.g. "app=sense".
	Selector string `yaml:"selector"`
	// Service names a Service in Namespace instead of Selector: the servers
	// are the ready endpoints of its EndpointSlices (discovery.k8s.io/v1).
	Service string `yaml:"service"`
	// Port is the traffic port: a number or a container port's name (with
	// Service, the name of one of its ports, as its EndpointSlices list them).
	Port string `yaml:"port"`
	// HealthPort is the check port, a number or a name; default: health.port, else Port.
	HealthPort string `yaml:"healthPort"`
	// Address is "pod" (the pod's IP, inside the cluster) or "service": each
	// instance published as its own Service (NodePort or LoadBalancer), the
	// Service carrying the same labels as its pod's role.
	Address string `yaml:"address"`
	// NodeHost is the host of NodePort addresses (address: service).
	NodeHost string `yaml:"nodeHost"`
	// RoleKey is the pod label naming the server (master, failover): stable
	// across restarts. Pods without it are named for their Deployment or StatefulSet.
	RoleKey string `yaml:"roleKey"`
	// PriorityKey is the pod label or annotation ordering the servers.
	PriorityKey string `yaml:"priorityKey"`
	// ActiveService, when set, names a selector-less Service in Namespace
	// whose EndpointSlice tandem keeps pointing at the active server only,
	// so that clients inside the cluster reach the master directly.
	ActiveService string `yaml:"activeService"`
}

// Address kinds of discovered servers.
const (
	AddressPod     = "pod"
	AddressService = "service"
)

// Mode is how a group spreads traffic over its servers.
const (
	ModeFailover   = "failover"
	ModeRoundRobin = "roundrobin"
)

// Failback policies.
const (
	FailbackAuto   = "auto"
	FailbackManual = "manual"
)

// Group is one application: a set of servers behind some hosts.
type Group struct {
	Name string `yaml:"name"`
	// Hosts routed to this group; "*.example.com" matches one label. A group
	// without hosts receives requests that match no other group.
	Hosts   []string `yaml:"hosts"`
	Mode    string   `yaml:"mode"`
	Servers []Server `yaml:"servers"`
	// Kubernetes discovers the servers from pods instead of Servers.
	Kubernetes   *Discovery `yaml:"kubernetes"`
	Pin          []Pin      `yaml:"pin"`
	Health       Health     `yaml:"health"`
	Passive      Passive    `yaml:"passive"`
	Failback     Failback   `yaml:"failback"`
	Websocket    Websocket  `yaml:"websocket"`
	Sticky       *Sticky    `yaml:"sticky"`
	Retry        Retry      `yaml:"retry"`
	Timeouts     Timeouts   `yaml:"timeouts"`
	MaxBodyBytes Size       `yaml:"maxBodyBytes"`
	// ExposeServer adds X-Tandem-Server to responses (debugging); off by
	// default so responses name nothing internal.
	ExposeServer bool `yaml:"exposeServer"`
}

// Server is one instance of the application.
type Server struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"` // host:port
	Backup  bool   `yaml:"backup"`
	// Priority orders servers in failover mode (lower first); ties keep file order.
	Priority int `yaml:"priority"`

	// Set by discovery, never by the file: the check port of this server,
	// what answers at Address (a pod's UID) and the pod, namespace/name.
	HealthPort int    `yaml:"-"`
	Instance   string `yaml:"-"`
	Pod        string `yaml:"-"`
	// PodIP and PodPort are where the pod itself serves (for the active
	// EndpointSlice), whatever address the gateway uses.
	PodIP   string `yaml:"-"`
	PodPort int    `yaml:"-"`
	// PodAddressType is PodIP's address type when its source says (an
	// EndpointSlice's: IPv4, IPv6 or FQDN), so that the active EndpointSlice
	// holds it as its source did: an FQDN endpoint's name in an IPv4 slice
	// is refused. Empty: told by PodIP's form (a pod's IP).
	PodAddressType string `yaml:"-"`
}

// Pin sends requests for a Host to one server (HAProxy's use-server).
type Pin struct {
	Host   string `yaml:"host"`
	Server string `yaml:"server"`
	// Strict answers 503 when the pinned server is down instead of using the active one.
	Strict bool `yaml:"strict"`
}

// Health is the active check of every server of a group.
type Health struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Port, when set, is checked instead of the traffic port.
	Port   int    `yaml:"port"`
	Host   string `yaml:"host"` // Host header of the check
	Expect Expect `yaml:"expect"`
	// Interval between checks while the server is steady.
	Interval Duration `yaml:"interval"`
	// FastInterval between checks while the server is down or changing state.
	FastInterval Duration `yaml:"fastInterval"`
	Timeout      Duration `yaml:"timeout"`
	Rise         int      `yaml:"rise"`
	Fall         int      `yaml:"fall"`
	Disabled     bool     `yaml:"disabled"`
}

// Expect is what a passing check answers.
type Expect struct {
	Status     StatusSet `yaml:"status"`
	Body       string    `yaml:"body"`       // substring
	BodyRegexp string    `yaml:"bodyRegexp"` // RE2
}

// Passive detection from live traffic.
type Passive struct {
	// MaxFails 5xx answers or timeouts within Window mark a server down; 0 disables.
	MaxFails int      `yaml:"maxFails"`
	Window   Duration `yaml:"window"`
	// Count5xx makes 5xx answers count as failures (timeouts always do).
	Count5xx bool `yaml:"count5xx"`
	// NoProgress marks a server down when requests have waited this long
	// for a response head and none came from it meanwhile: a server that
	// accepts requests and answers none. Unset: DefaultNoProgress; 0
	// disables it.
	NoProgress *Duration `yaml:"noProgress"`
	// BaseEjectionTime holds a server taken down by its traffic down that
	// long whatever its checks say, one more for each repeated ejection,
	// up to MaxEjectionTime; one repeat is forgotten per Window in
	// service. A failing check ends a hold (the checks agree again).
	BaseEjectionTime Duration `yaml:"baseEjectionTime"`
	MaxEjectionTime  Duration `yaml:"maxEjectionTime"`
}

// DefaultNoProgress is passive.noProgress when unset.
const DefaultNoProgress = 5 * time.Second

// NoProgressAfter returns passive.noProgress, 0 when disabled.
func (p Passive) NoProgressAfter() time.Duration {
	if p.NoProgress == nil {
		return DefaultNoProgress
	}
	return p.NoProgress.D()
}

// Failback is what happens when a higher-priority server is healthy again.
type Failback struct {
	Policy string   `yaml:"policy"` // auto | manual
	After  Duration `yaml:"after"`  // auto only: healthy this long first
}

// Websocket guard and switchover.
type Websocket struct {
	Paths          []string `yaml:"paths"`
	RequireUpgrade bool     `yaml:"requireUpgrade"`
	// OnSwitch: "close" sends close code 1012 on connections to a server that
	// lost the active role; "keep" leaves them.
	OnSwitch string `yaml:"onSwitch"`
	// DrainGrace is how long websockets of a drained server stay open
	// before they are closed with 1012.
	DrainGrace Duration `yaml:"drainGrace"`
}

// Sticky pins a client to a server by cookie in round-robin mode.
type Sticky struct {
	Cookie string `yaml:"cookie"`
}

// Retry of requests that are safe to replay.
type Retry struct {
	// Attempts is the total number of tries (1 = no retry).
	Attempts int `yaml:"attempts"`
	// PerTryTimeout bounds the wait for response headers of one try; 0 = none.
	PerTryTimeout Duration `yaml:"perTryTimeout"`
	// BufferBytes is the largest request body kept to replay an idempotent request.
	BufferBytes Size `yaml:"bufferBytes"`
}

// Timeouts towards the servers.
type Timeouts struct {
	Connect Duration `yaml:"connect"`
	// Response bounds the wait for response headers across all tries.
	Response Duration `yaml:"response"`
	// BodyIdle bounds a wait for more of a response body (a server that
	// sent its head and stalls): the exchange ends then.
	BodyIdle Duration `yaml:"bodyIdle"`
}

// Defaults filled in by Load before validation.
const (
	// DefaultAdminAddress is admin.address when unset; no listener may
	// have it.
	DefaultAdminAddress = "127.0.0.1:9901"
	DefaultInterval     = time.Second
	DefaultFastInterval = 250 * time.Millisecond
	DefaultTimeout      = 500 * time.Millisecond
)

// Bounds of some values, for validation and for tandem import.
const (
	// MinInterval is the shortest health.interval and fastInterval.
	MinInterval = 10 * time.Millisecond
	// MaxAttempts is the most tries retry.attempts allows.
	MaxAttempts = 10
)
