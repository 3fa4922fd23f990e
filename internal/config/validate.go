package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func applyDefaults(cfg *Config) {
	if cfg.Engine == "" {
		cfg.Engine = EngineTandem
	}
	if cfg.Admin.Address == "" {
		cfg.Admin.Address = DefaultAdminAddress
	}
	if cfg.Log.Format == "" {
		cfg.Log.Format = "text"
	}
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	l := &cfg.Limits
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = Duration(10 * time.Second)
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = Duration(120 * time.Second)
	}
	if l.Drain == 0 {
		l.Drain = Duration(10 * time.Second)
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = 10000
	}
	for i := range cfg.Listeners {
		if t := cfg.Listeners[i].TLS; t != nil && t.MinVersion == "" {
			t.MinVersion = "1.2"
		}
	}
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		if g.Mode == "" {
			g.Mode = ModeFailover
		}
		h := &g.Health
		if h.Method == "" {
			h.Method = "GET"
		}
		if h.Path == "" {
			h.Path = "/status"
		}
		if len(h.Expect.Status) == 0 {
			h.Expect.Status = StatusSet{{200, 299}}
		}
		if h.Interval == 0 {
			h.Interval = Duration(DefaultInterval)
		}
		if h.FastInterval == 0 {
			h.FastInterval = Duration(min(DefaultFastInterval, h.Interval.D()))
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(min(DefaultTimeout, h.Interval.D()))
		}
		if h.Rise == 0 {
			h.Rise = 2
		}
		if h.Fall == 0 {
			h.Fall = 2
		}
		if g.Passive.MaxFails == 0 {
			g.Passive.MaxFails = 3
		}
		if g.Passive.Window == 0 {
			g.Passive.Window = Duration(10 * time.Second)
		}
		if g.Passive.BaseEjectionTime == 0 {
			g.Passive.BaseEjectionTime = Duration(5 * time.Second)
		}
		if g.Passive.MaxEjectionTime == 0 {
			g.Passive.MaxEjectionTime = Duration(max(5*time.Minute, g.Passive.BaseEjectionTime.D()))
		}
		if g.Failback.Policy == "" {
			g.Failback.Policy = FailbackAuto
		}
		if g.Websocket.OnSwitch == "" {
			g.Websocket.OnSwitch = "close"
		}
		if g.Websocket.DrainGrace == 0 {
			g.Websocket.DrainGrace = Duration(5 * time.Second)
		}
		if g.Retry.Attempts == 0 {
			g.Retry.Attempts = 3
		}
		if g.Retry.BufferBytes == 0 {
			g.Retry.BufferBytes = 64 << 10
		}
		if g.Timeouts.Connect == 0 {
			g.Timeouts.Connect = Duration(2 * time.Second)
		}
		if g.Timeouts.Response == 0 {
			g.Timeouts.Response = Duration(60 * time.Second)
		}
		if g.Timeouts.BodyIdle == 0 {
			g.Timeouts.BodyIdle = Duration(60 * time.Second)
		}
		if g.MaxBodyBytes == 0 {
			g.MaxBodyBytes = 10 << 20
		}
		if d := g.Kubernetes; d != nil {
			if d.Address == "" {
				d.Address = AddressPod
			}
			if d.RoleKey == "" {
				d.RoleKey = "tandem.io/role"
			}
			if d.PriorityKey == "" {
				d.PriorityKey = "tandem.io/priority"
			}
		}
	}
	if k := cfg.Kubernetes; k != nil && k.Coordination != nil {
		co := k.Coordination
		def := func(d *Duration, v time.Duration) {
			if *d == 0 {
				*d = Duration(v)
			}
		}
		if co.Name == "" {
			co.Name = "tandem"
		}
		// A survivor takes an expired Lease at its next retry: a leader's
		// SIGKILL costs about leaseDuration+retryPeriod without a leader
		// (routing goes on; only new decisions wait): 5.5-6.5 s with these
		// (bench -kube), 10.5-11.5 s with the 10s/8s of client-go's
		// examples. Shorter than kube-scheduler's 15s/10s/2s because a
		// leader change here moves no traffic, so churn is cheap and the
		// gap is what counts. Not shorter still: renewDeadline is how long
		// a leader rides out a slow API before it steps down, and below
		// fenceAfter it already has less time than the replicas' fence;
		// leaseDuration-renewDeadline-retryPeriod (1 s) is the margin by
		// which a cut-off leader has stopped before another can lead.
		// retryPeriod stays 1s: each replica polls the Lease that often,
		// 1 request/s each beside its heartbeat's 2.
		def(&co.LeaseDuration, 5*time.Second)
		def(&co.RenewDeadline, 3*time.Second)
		def(&co.RetryPeriod, time.Second)
		def(&co.Heartbeat, time.Second)
		def(&co.FenceAfter, 5*time.Second)
		def(&co.RevokeTimeout, time.Second)
		def(&co.HoldRequests, 3*time.Second)
	}
}

func validateKubernetes(cfg *Config, c *collector) {
	k := cfg.Kubernetes
	if k == nil {
		for i, g := range cfg.Groups {
			if g.Kubernetes != nil {
				c.at(fmt.Sprintf("groups[%d].kubernetes", i), "discovery needs the top-level kubernetes section (kubeconfig, or {} in the cluster)")
			}
		}
		return
	}
	if k.Namespace != "" && !validDNSLabel(k.Namespace) {
		c.at("kubernetes.namespace", "%q is not a valid namespace name", k.Namespace)
	}
	if co := k.Coordination; co != nil {
		p := "kubernetes.coordination"
		if !validDNSLabel(co.Name) {
			c.at(p+".name", "%q: want a DNS label (lower-case letters, digits, '-')", co.Name)
		}
		if co.RenewDeadline >= co.LeaseDuration {
			c.at(p+".renewDeadline", "%v must be shorter than leaseDuration %v", co.RenewDeadline.D(), co.LeaseDuration.D())
		}
		if co.RetryPeriod >= co.RenewDeadline {
			c.at(p+".retryPeriod", "%v must be shorter than renewDeadline %v", co.RetryPeriod.D(), co.RenewDeadline.D())
		}
		if co.Heartbeat >= co.FenceAfter {
			c.at(p+".heartbeat", "%v must be shorter than fenceAfter %v", co.Heartbeat.D(), co.FenceAfter.D())
		}
		for _, d := range []struct {
			f string
			v Duration
		}{{"heartbeat", co.Heartbeat}, {"revokeTimeout", co.RevokeTimeout}, {"holdRequests", co.HoldRequests}, {"fenceAfter", co.FenceAfter}} {
			if d.v.D() < 10*time.Millisecond {
				c.at(p+"."+d.f, "%v is too short (minimum 10ms)", d.v.D())
			}
		}
	}
	for i, g := range cfg.Groups {
		d := g.Kubernetes
		if d == nil {
			continue
		}
		p := fmt.Sprintf("groups[%d].kubernetes", i)
		if len(g.Servers) > 0 {
			c.at(fmt.Sprintf("groups[%d].servers", i), "a group takes its servers from the file or from the cluster, not both: remove servers or kubernetes")
		}
		if d.Namespace != "" && !validDNSLabel(d.Namespace) {
			c.at(p+".namespace", "%q is not a valid namespace name", d.Namespace)
		}
		switch {
		case d.Service != "" && d.Selector != "":
			c.at(p+".service", "selector and service are exclusive: the servers are the pods of a selector or the endpoints of a Service; remove one")
		case d.Service != "":
			if !validDNSLabel(d.Service) {
				c.at(p+".service", "%q: want the name of a Service (a DNS label)", d.Service)
			}
			if d.Address == AddressService {
				c.at(p+".address", "address: service publishes each pod of a selector as its own Service; with service the servers are its endpoints' addresses: remove address or use selector")
			}
		case strings.TrimSpace(d.Selector) == "":
			c.at(p+".selector", "required: a label selector of the group's pods, e.g. app=sense (or service: the name of a Service, for its EndpointSlices)")
		default:
			if err := checkSelector(d.Selector); err != nil {
				c.at(p+".selector", "%v", err)
			}
		}
		if d.Port == "" {
			c.at(p+".port", "required: the traffic port, a number or a container port name")
		} else if err := checkPortRef(d.Port); err != nil {
			c.at(p+".port", "%v", err)
		}
		if d.HealthPort != "" {
			if err := checkPortRef(d.HealthPort); err != nil {
				c.at(p+".healthPort", "%v", err)
			}
		}
		switch {
		case d.ActiveService != "" && (!validDNSLabel(d.ActiveService) || g.Mode != ModeFailover):
			c.at(p+".activeService", "%q: want the name of a Service (a DNS label) in a failover group", d.ActiveService)
		case d.ActiveService != "" && d.ActiveService == d.Service:
			// The leader's slice would be labelled for the group's own
			// Service: the discovery would read it back as a server, and
			// the Service's clients would reach every endpoint anyway.
			c.at(p+".activeService", "%q is the group's service: name another, selector-less Service, which holds the active server only", d.ActiveService)
		}
		switch d.Address {
		case AddressPod:
		case AddressService:
			if d.NodeHost != "" && net.ParseIP(d.NodeHost) == nil && !validName(d.NodeHost) {
				c.at(p+".nodeHost", "%q is not a host", d.NodeHost)
			}
		default:
			c.at(p+".address", "%q: want pod or service", d.Address)
		}
	}
}

// checkPortRef accepts a port number or a container port name (IANA_SVC_NAME).
func checkPortRef(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 65535 {
			return fmt.Errorf("port %d is out of range 1-65535", n)
		}
		return nil
	}
	if len(s) > 15 || !validDNSLabel(s) {
		return fmt.Errorf("%q is neither a port number nor a container port name", s)
	}
	return nil
}

// checkSelector accepts the equality form of a label selector
// ("k=v,k2==v2,k3!=v3"), which is what discovery needs.
func checkSelector(s string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSuffix(k, "!")
		v = strings.TrimPrefix(v, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%q: want key=value pairs separated by commas", s)
		}
		_ = v
	}
	return nil
}

func validDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validate(cfg *Config, c *collector) {
	if len(cfg.Listeners) == 0 {
		c.at("listeners", "at least one listener is required")
	}
	if cfg.Engine != EngineTandem && cfg.Engine != EngineNetHTTP {
		c.at("engine", "%q: want tandem or net/http", cfg.Engine)
	}
	if cfg.Limits.MaxConnections < 1 {
		c.at("limits.maxConnections", "%d: want at least 1", cfg.Limits.MaxConnections)
	}
	names := map[string]bool{}
	addrs := map[string]bool{}
	hasTLS := false
	for i, l := range cfg.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			c.at(p+".name", "required")
		} else if names[l.Name] {
			c.at(p+".name", "listener %q is defined twice", l.Name)
		}
		names[l.Name] = true
		if checkHostPort(c, p+".address", l.Address, true) {
			if addrs[l.Address] {
				c.at(p+".address", "address %q is used by another listener", l.Address)
			}
			addrs[l.Address] = true
		}
		if l.TLS != nil {
			hasTLS = true
			if l.TLS.Cert == "" {
				c.at(p+".tls.cert", "required for a TLS listener")
			}
			if l.TLS.Key == "" {
				c.at(p+".tls.key", "required for a TLS listener")
			}
			if l.TLS.MinVersion != "1.2" && l.TLS.MinVersion != "1.3" {
				c.at(p+".tls.minVersion", "%q: want 1.2 or 1.3", l.TLS.MinVersion)
			}
			if l.RedirectHTTPS {
				c.at(p+".redirectHTTPS", "a TLS listener cannot redirect to HTTPS")
			}
		}
		if l.HSTS != nil {
			if l.TLS == nil {
				c.at(p+".hsts", "HSTS is only sent over HTTPS: this listener has no tls")
			}
			if err := HSTSMaxAge(*l.HSTS); err != nil {
				c.at(p+".hsts.maxAge", "%v", err)
			}
		}
		if l.HTTPSPort < 0 || l.HTTPSPort > 65535 {
			c.at(p+".httpsPort", "port %d is out of range 1-65535", l.HTTPSPort)
		}
	}
	for i, l := range cfg.Listeners {
		if l.RedirectHTTPS && !hasTLS && l.HTTPSPort == 0 {
			c.at(fmt.Sprintf("listeners[%d].redirectHTTPS", i), "no TLS listener to redirect to: add one or set httpsPort")
		}
	}
	if checkHostPort(c, "admin.address", cfg.Admin.Address, true) && addrs[cfg.Admin.Address] {
		c.at("admin.address", "address %q is also a public listener", cfg.Admin.Address)
	}
	if !isLoopback(cfg.Admin.Address) && cfg.Admin.TokenFile == "" {
		c.at("admin.address", "%q is not loopback: set admin.tokenFile so the admin API requires a token", cfg.Admin.Address)
	}
	switch cfg.Log.Format {
	case "json", "text":
	default:
		c.at("log.format", "%q: want json or text", cfg.Log.Format)
	}
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		c.at("log.level", "%q: want debug, info, warn or error", cfg.Log.Level)
	}
	for i, tp := range cfg.TrustedProxies {
		if _, err := ParsePrefix(tp); err != nil {
			c.at(fmt.Sprintf("trustedProxies[%d]", i), "%v", err)
		}
	}
	if len(cfg.Groups) == 0 {
		c.at("groups", "at least one group is required")
	}
	groupNames := map[string]bool{}
	hostOwner := map[string]string{}
	catchAll := ""
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		p := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			c.at(p+".name", "required")
		} else if err := Name(g.Name); err != nil {
			c.at(p+".name", "%v", err)
		} else if groupNames[g.Name] {
			c.at(p+".name", "group %q is defined twice", g.Name)
		}
		groupNames[g.Name] = true
		if len(g.Hosts) == 0 {
			if catchAll != "" {
				c.at(p+".hosts", "group %q has no hosts but %q already receives every other host", g.Name, catchAll)
			}
			catchAll = g.Name
		}
		for j, h := range g.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, j)
			h = strings.ToLower(h)
			if err := checkHostPattern(h); err != nil {
				c.at(hp, "%v", err)
				continue
			}
			if owner, dup := hostOwner[h]; dup {
				c.at(hp, "host %q is already routed to group %q", h, owner)
			}
			hostOwner[h] = g.Name
		}
		validateGroup(g, p, c)
	}
	validateKubernetes(cfg, c)
}

func validateGroup(g *Group, p string, c *collector) {
	if g.Mode != ModeFailover && g.Mode != ModeRoundRobin {
		c.at(p+".mode", "%q: want failover or roundrobin", g.Mode)
	}
	if len(g.Servers) == 0 && g.Kubernetes == nil {
		c.at(p+".servers", "at least one server is required (or kubernetes: to discover them)")
	}
	servers := map[string]bool{}
	for j, s := range g.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", p, j)
		if s.Name == "" {
			c.at(sp+".name", "required")
		} else if err := Name(s.Name); err != nil {
			c.at(sp+".name", "%v", err)
		} else if servers[s.Name] {
			c.at(sp+".name", "server %q is defined twice in group %q", s.Name, g.Name)
		}
		servers[s.Name] = true
		checkHostPort(c, sp+".address", s.Address, false)
		if s.Priority < 0 {
			c.at(sp+".priority", "must not be negative")
		}
	}
	if g.Mode == ModeFailover && len(g.Servers) > 0 && g.Kubernetes == nil {
		allBackup := true
		for _, s := range g.Servers {
			allBackup = allBackup && s.Backup
		}
		if allBackup {
			c.at(p+".servers", "every server is a backup: at least one must not be")
		}
	}
	pinned := map[string]bool{}
	for j, pin := range g.Pin {
		pp := fmt.Sprintf("%s.pin[%d]", p, j)
		if err := ExactHost(strings.ToLower(pin.Host)); err != nil {
			c.at(pp+".host", "%v", err)
		} else if pinned[strings.ToLower(pin.Host)] {
			c.at(pp+".host", "host %q is pinned twice", pin.Host)
		}
		pinned[strings.ToLower(pin.Host)] = true
		if pin.Server == "" {
			c.at(pp+".server", "required")
		} else if !servers[pin.Server] && g.Kubernetes == nil {
			c.at(pp+".server", "no server named %q in group %q", pin.Server, g.Name)
		}
	}
	h := g.Health
	hp := p + ".health"
	if err := HTTPMethod(h.Method); err != nil {
		c.at(hp+".method", "%v", err)
	}
	if err := AbsPath(h.Path); err != nil {
		c.at(hp+".path", "%v", err)
	}
	if h.Port < 0 || h.Port > 65535 {
		c.at(hp+".port", "port %d is out of range 1-65535", h.Port)
	}
	if h.Expect.BodyRegexp != "" {
		if err := BodyRegexp(h.Expect.BodyRegexp); err != nil {
			c.at(hp+".expect.bodyRegexp", "%v", err)
		}
	}
	if h.Timeout > h.Interval {
		c.at(hp+".timeout", "%v is longer than the interval %v", h.Timeout.D(), h.Interval.D())
	}
	if h.Interval.D() < MinInterval {
		c.at(hp+".interval", "%v is too short (minimum %v)", h.Interval.D(), MinInterval)
	}
	if h.FastInterval.D() < MinInterval {
		c.at(hp+".fastInterval", "%v is too short (minimum %v)", h.FastInterval.D(), MinInterval)
	}
	if h.Rise < 1 {
		c.at(hp+".rise", "must be at least 1")
	}
	if h.Fall < 1 {
		c.at(hp+".fall", "must be at least 1")
	}
	if g.Passive.MaxFails < 0 {
		c.at(p+".passive.maxFails", "must not be negative")
	}
	if g.Passive.MaxEjectionTime < g.Passive.BaseEjectionTime {
		c.at(p+".passive.maxEjectionTime", "%v is shorter than baseEjectionTime %v", g.Passive.MaxEjectionTime.D(), g.Passive.BaseEjectionTime.D())
	}
	if np := g.Passive.NoProgressAfter(); np > 0 && np < 100*time.Millisecond {
		c.at(p+".passive.noProgress", "%v is too short (minimum 100ms; 0 disables)", np)
	} else if np > 0 && np >= g.Timeouts.Response.D() {
		c.at(p+".passive.noProgress", "%v is not shorter than timeouts.response %v: it could never trip", np, g.Timeouts.Response.D())
	}
	switch g.Failback.Policy {
	case FailbackAuto:
	case FailbackManual:
		if g.Failback.After != 0 {
			c.at(p+".failback.after", "only applies to policy auto")
		}
	default:
		c.at(p+".failback.policy", "%q: want auto or manual", g.Failback.Policy)
	}
	for j, wp := range g.Websocket.Paths {
		if err := AbsPath(wp); err != nil {
			c.at(fmt.Sprintf("%s.websocket.paths[%d]", p, j), "%v", err)
		}
	}
	if g.Websocket.OnSwitch != "close" && g.Websocket.OnSwitch != "keep" {
		c.at(p+".websocket.onSwitch", "%q: want close or keep", g.Websocket.OnSwitch)
	}
	if g.Sticky != nil {
		if g.Mode != ModeRoundRobin {
			c.at(p+".sticky", "sticky sessions only apply to mode roundrobin")
		}
		if err := CookieName(g.Sticky.Cookie); err != nil {
			c.at(p+".sticky.cookie", "%v", err)
		}
	}
	if g.Retry.Attempts < 1 || g.Retry.Attempts > MaxAttempts {
		c.at(p+".retry.attempts", "%d: want 1 to %d tries", g.Retry.Attempts, MaxAttempts)
	}
	if g.Retry.BufferBytes > g.MaxBodyBytes {
		c.at(p+".retry.bufferBytes", "larger than maxBodyBytes (%d)", g.MaxBodyBytes)
	}
}

// BodyRegexp checks s as health.expect.bodyRegexp (or the rstring tandem
// import translates): a regular expression Go's RE2 reads.
func BodyRegexp(s string) error {
	_, err := regexp.Compile(s)
	return err
}

// HSTSMaxAge checks the max-age of h: not negative, and given unless
// h.Header is (tandem import translates a Strict-Transport-Security value
// into h by this rule).
func HSTSMaxAge(h HSTS) error {
	switch {
	case h.MaxAge < 0:
		return fmt.Errorf("must not be negative")
	case h.Header == "" && h.MaxAge == 0:
		return fmt.Errorf("required (seconds), e.g. 16000000")
	}
	return nil
}

// checkHostPort validates "host:port"; listen addresses may leave the host empty.
func checkHostPort(c *collector, field, addr string, listen bool) bool {
	if addr == "" {
		c.at(field, "required")
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.at(field, "%q: want host:port", addr)
		return false
	}
	if host == "" && !listen {
		c.at(field, "%q: host is missing", addr)
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		if !(listen && n == 0 && err == nil) {
			c.at(field, "port %q is out of range 1-65535", port)
			return false
		}
	}
	return true
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// ParsePrefix accepts an address or a CIDR prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

var hostRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// ExactHost checks h as a host a request must name exactly (a pin, or a
// Host test tandem import translates): a lower-case host name, no port,
// no wildcard.
func ExactHost(h string) error {
	if strings.Contains(h, "*") || checkHostPattern(h) != nil {
		return fmt.Errorf("%q is not an exact host name (no port, no wildcard)", h)
	}
	return nil
}

func checkHostPattern(h string) error {
	if h == "" {
		return fmt.Errorf("empty host")
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("%q: give the host without a port", h)
	}
	if !hostRE.MatchString(h) {
		return fmt.Errorf("%q is not a host name (wildcards: *.example.com)", h)
	}
	return nil
}

// Name checks the name of a group or a server (a group's is its backend's
// in tandem import, a server's its server line's).
func Name(s string) error {
	if !validName(s) {
		return fmt.Errorf("%q: use letters, digits, '-', '_' and '.' (at most 63)", s)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// CookieName checks s as the name of the sticky cookie (sticky.cookie, or
// the cookie tandem import translates): a token, as a Set-Cookie name must
// be.
func CookieName(s string) error {
	if !validToken(s) {
		return fmt.Errorf("%q is not a valid cookie name", s)
	}
	return nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

// HTTPMethod checks m as the method of a check (health.method, or the
// method of a check tandem import translates): a token in capitals.
func HTTPMethod(m string) error {
	if !validMethod(m) {
		return fmt.Errorf("%q is not an HTTP method", m)
	}
	return nil
}

func validMethod(m string) bool { return m != "" && validToken(m) && strings.ToUpper(m) == m }

// AbsPath checks p as a path a request names (health.path,
// websocket.paths): it starts with /.
func AbsPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with /", p)
	}
	return nil
}
