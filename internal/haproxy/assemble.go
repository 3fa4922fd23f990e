package haproxy

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// assemble builds the tandem config from what the sections said, and
// returns it as YAML (nil when there are errors).
func (tr *translator) assemble() []byte {
	t := tr.t
	var fronts []*front
	for _, f := range tr.fronts {
		if len(f.binds) > 0 {
			fronts = append(fronts, f)
		} else if f.sec != nil && f.sec.Kind == kFrontend {
			t.drop(f.sec.Head, "frontend %s binds no address tandem can listen on: left out", f.sec.Name)
		}
	}
	flags := tr.opt.HTTP != "" || tr.opt.HTTPS != ""
	// Without frontends the backends are still read, for what they say.
	finishAll := func() []byte {
		for _, b := range tr.backs {
			b.ctx.finishServers()
		}
		return nil
	}
	switch {
	case len(fronts) == 0 && !flags:
		t.fail(nil, "no frontend or listen section binds an address: nothing would listen. Add a frontend (bind, default_backend), or give --http ADDR and/or --https ADDR --crt FILE")
		return finishAll()
	case len(fronts) == 0:
		f, ok := tr.flagFront()
		if !ok {
			return finishAll()
		}
		fronts = []*front{f}
	case flags:
		t.fail(nil, "--http and --https stand in for a missing frontend, and this file has one: change its bind lines instead")
		return finishAll()
	}
	catchAll := tr.route(fronts)
	cfg := &config.Config{}
	comments := map[string]string{}
	var groups []*back
	for _, b := range tr.backs {
		if len(b.reachedBy) == 0 {
			t.drop(b.sec.Head, "no frontend sends traffic to backend %s: it is left out", b.name)
			continue
		}
		if b.ctx.finishServers(); b.out != nil {
			groups = append(groups, b)
		}
	}
	listeners := tr.listeners(fronts)
	tr.redirects(fronts, listeners)
	tr.hsts(fronts)
	for _, f := range fronts {
		for _, b := range f.reaches {
			if len(f.rules.guard) > 0 && b.out != nil {
				b.out.g.Websocket.Paths = slices.Compact(slices.Sorted(slices.Values(append(b.out.g.Websocket.Paths, f.rules.guard...))))
				b.out.g.Websocket.RequireUpgrade = true
				b.out.from("websocket.paths", f.rules.guardLines...)
			}
		}
	}
	for i, b := range listeners {
		l := config.Listener{Name: b.name, Address: b.addr, RedirectHTTPS: b.redirect, HTTPSPort: b.httpsPort}
		if b.tls {
			l.TLS = &config.TLS{Cert: b.crt, Key: b.key}
			if b.minVersion == "1.3" {
				l.TLS.MinVersion = "1.3"
			}
		}
		if b.hsts != "" {
			h := parseHSTS(b.hsts)
			l.HSTS = &h
		}
		cfg.Listeners = append(cfg.Listeners, l)
		comments[fmt.Sprintf("listeners[%d]", i)] = tr.src(b.l)
	}
	tr.limits(fronts, cfg, comments)
	for i, b := range groups {
		o := b.out
		if b != catchAll {
			o.g.Hosts = o.hosts
		}
		for _, f := range fronts {
			if !slices.Contains(b.reachedBy, f) && !allRedirect(f) {
				t.warn(b.sec.Head, "only some frontends send traffic to backend %s; tandem routes by Host on every listener, so frontend %s's listeners serve it too", b.name, frontName(f))
			}
		}
		cfg.Groups = append(cfg.Groups, o.g)
		for p, ls := range o.lines {
			key := fmt.Sprintf("groups[%d]", i)
			if p != "" {
				key += "." + p
			}
			comments[key] = tr.src(ls...)
		}
	}
	if len(cfg.Groups) == 0 {
		t.fail(nil, "no backend is translated and reached by a frontend: tandem would have no group to send to")
	}
	if t.errors() > 0 {
		return nil
	}
	out, bad, err := encode(cfg, comments, tr.header())
	for _, b := range bad {
		t.fail(nil, "%s, from %s: %q is not UTF-8, and a tandem config is UTF-8 text", b.path, tr.nearest(comments, b.path), b.value)
	}
	if err != nil {
		t.fail(nil, "encoding the config: %v", err)
	}
	if out == nil {
		return nil
	}
	// The gate: what tandem's own validation refuses is a bug here.
	if _, err := config.Parse("imported", out); err != nil {
		for _, p := range config.Problems(err) {
			t.fail(nil, "the translation is refused by tandem's validation (a bug of tandem import, please report it): %s: %s", p.Field, p.Msg)
		}
		return nil
	}
	return out
}

// nearest returns the comment of path, or of the nearest field above it
// that has one: the source lines of a value (the file, if none).
func (tr *translator) nearest(comments map[string]string, path string) string {
	for p := path; p != ""; p = p[:max(strings.LastIndexAny(p, ".["), 0)] {
		if c := comments[p]; c != "" {
			return c
		}
	}
	return tr.file
}

func (tr *translator) header() string {
	return fmt.Sprintf("tandem config imported from %s by `tandem import haproxy`.\n"+
		"Comments name the lines each setting comes from; lines not translated, and warnings, were listed on stderr.\n"+
		"Check it with `tandem check -c FILE`; the admin API listens on %s (admin.address).", tr.file, config.DefaultAdminAddress)
}

// src names source lines for a comment: haproxy.cfg:13,14, or the flag
// a setting came from.
func (tr *translator) src(ls ...*Line) string {
	var nums, flags []string
	for _, l := range ls {
		switch {
		case l == nil:
		case l.Num == 0:
			flags = append(flags, l.Words[0])
		default:
			nums = append(nums, strconv.Itoa(l.Num))
		}
	}
	if len(nums) > 0 {
		flags = append([]string{tr.file + ":" + strings.Join(nums, ",")}, flags...)
	}
	return strings.Join(flags, ", ")
}

func frontName(f *front) string {
	if f.sec == nil {
		return "(--http/--https)"
	}
	return f.sec.Name
}

// flagFront is the frontend --http and --https stand in for: every
// request to the file's only backend.
func (tr *translator) flagFront() (*front, bool) {
	t := tr.t
	bs := tr.backs
	if len(bs) != 1 {
		t.fail(nil, "--http and --https send every request to the file's one backend, and it has %d that translate: add a frontend with use_backend rules", len(bs))
		return nil, false
	}
	f := &front{}
	f.defaultBackend.put(bs[0].name, &Line{Words: []string{"--http/--https"}})
	if tr.opt.HTTP != "" {
		addr, ok := listenAddress(tr.opt.HTTP)
		if !ok {
			t.fail(nil, "--http %q: want host:port or :port", tr.opt.HTTP)
			return nil, false
		}
		f.binds = append(f.binds, &bind{l: &Line{Words: []string{"--http"}}, addr: addr, front: f})
	}
	if tr.opt.HTTPS != "" {
		addr, ok := listenAddress(tr.opt.HTTPS)
		if !ok || tr.opt.Crt == "" {
			t.fail(nil, "--https %q: want host:port or :port, and --crt FILE (the chain and key in one PEM, as HAProxy's crt)", tr.opt.HTTPS)
			return nil, false
		}
		if f.bindOf(addr) != nil {
			t.fail(nil, "--http and --https name the same address %s: give each its own", addr)
			return nil, false
		}
		f.binds = append(f.binds, &bind{l: &Line{Words: []string{"--https"}}, addr: addr, tls: true, crt: tr.opt.Crt, front: f, minVersion: tr.minTLS.v})
	} else if tr.opt.Crt != "" {
		t.fail(nil, "--crt without --https")
		return nil, false
	}
	tr.fronts = append(tr.fronts, f)
	return f, true
}

// route resolves each frontend's use_backend and default_backend into the
// groups' hosts, and returns the group every other host goes to.
func (tr *translator) route(fronts []*front) *back {
	t := tr.t
	var catchAll *back
	var catchAllLine *Line
	owner := map[string]*back{}
	ownerLine := map[string]*Line{}
	reach := func(f *front, name string, l *Line) *back {
		b := tr.byName[name]
		switch {
		case b == nil && tr.leftOut[name] != "":
			t.skip(l, "backend %s is left out: %s", name, tr.leftOut[name])
			return nil
		case b == nil:
			t.fail(l, "no backend named %q", name)
			return nil
		}
		if !slices.Contains(f.reaches, b) {
			f.reaches = append(f.reaches, b)
			b.reachedBy = append(b.reachedBy, f)
		}
		return b
	}
	for _, f := range fronts {
		def := f.defaultBackend
		for _, r := range f.routes {
			if r.hosts != nil {
				continue
			}
			if def.set() && (f.sec == nil || def.l != f.sec.Head) {
				t.skip(def.l, "use_backend %s without a condition (line %d) takes every request first: this default is never used", r.backend, r.l.Num)
			}
			def = val[string]{v: r.backend, l: r.l}
			break
		}
		for _, r := range f.routes {
			if r.hosts == nil {
				continue
			}
			b := reach(f, r.backend, r.l)
			if b == nil {
				continue
			}
			for _, h := range r.hosts {
				if o := owner[h]; o != nil && o != b {
					t.fail(r.l, "host %s already goes to backend %s (line %d): tandem sends a host to one group on every listener", h, o.name, ownerLine[h].Num)
					continue
				}
				owner[h], ownerLine[h] = b, r.l
				if !slices.Contains(b.hosts, h) {
					b.hosts = append(b.hosts, h)
				}
			}
			b.hostLines = append(b.hostLines, r.l)
			t.ok(r.l)
		}
		if !def.set() {
			continue
		}
		b := reach(f, def.v, def.l)
		if b == nil {
			continue
		}
		if catchAll != nil && catchAll != b {
			t.fail(def.l, "every host no rule names goes to backend %s here, but to %s in frontend %s (line %d): tandem sends them to one group on every listener",
				b.name, catchAll.name, frontName(catchAll.reachedBy[0]), catchAllLine.Num)
			continue
		}
		catchAll, catchAllLine = b, def.l
		b.hostLines = append(b.hostLines, def.l)
		t.ok(def.l)
	}
	return catchAll
}

// listeners names every bind and finds the key of its certificate.
func (tr *translator) listeners(fronts []*front) []*bind {
	var out []*bind
	used := map[string]bool{}
	byAddr := map[string]*bind{}
	for _, f := range fronts {
		for _, b := range f.binds {
			if prev := byAddr[b.addr]; prev != nil {
				// HAProxy would share the address's connections between the two
				// frontends at random (SO_REUSEPORT): no config means that.
				tr.t.fail(b.l, "address %s is bound by %s too (line %d): HAProxy shares its connections between the two at random; give one of them another address",
					b.addr, frontName(prev.front), prev.l.Num)
				continue
			}
			byAddr[b.addr] = b
			if b.addr == config.DefaultAdminAddress {
				tr.t.fail(b.l, "address %s is where tandem's admin API listens (admin.address): listen on another one", b.addr)
				continue
			}
			base := frontName(f)
			if f.sec == nil {
				base = "http"
				if b.tls {
					base = "https"
				}
			} else if len(f.binds) > 1 {
				_, port, _ := net.SplitHostPort(b.addr)
				base += "-" + port
			}
			name := base
			for n := 2; used[name]; n++ {
				name = fmt.Sprintf("%s-%d", base, n)
			}
			used[name], b.name = true, name
			if b.tls {
				tr.certificate(b)
			}
			out = append(out, b)
		}
	}
	return out
}

// certificate checks the crt file of a TLS bind where tandem import runs:
// a PEM with the chain and the key serves as both tls.cert and tls.key;
// one without a key takes FILE.key beside it, as HAProxy does.
func (tr *translator) certificate(b *bind) {
	t := tr.t
	b.key = b.crt
	data, err := os.ReadFile(b.crt)
	switch {
	case os.IsNotExist(err):
		t.warn(b.l, "crt %s does not exist here: `tandem check` refuses the config until it does where the gateway runs (it reads the chain and key from that one file)", b.crt)
		return
	case err != nil:
		t.warn(b.l, "crt %s: %v: `tandem check` will say whether the gateway can read it", b.crt, err)
		return
	}
	hasKey := false
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		hasKey = hasKey || strings.HasSuffix(blk.Type, "PRIVATE KEY")
	}
	if !hasKey {
		if _, err := os.Stat(b.crt + ".key"); err == nil {
			b.key = b.crt + ".key"
		} else {
			t.fail(b.l, "crt %s holds no private key, and there is no %s.key beside it: the listener could not serve TLS", b.crt, b.crt)
			return
		}
	}
	if _, err := tls.LoadX509KeyPair(b.crt, b.key); err != nil {
		t.fail(b.l, "crt %s: %v", b.crt, err)
	}
}

// allRedirect reports whether every listener of f redirects to HTTPS.
func allRedirect(f *front) bool {
	for _, b := range f.binds {
		if !b.redirect {
			return false
		}
	}
	return len(f.binds) > 0
}

// redirects decides which plain listeners redirect to HTTPS: those of a
// frontend that redirects, or whose backends all do (tandem redirects a
// whole listener, before any group).
func (tr *translator) redirects(fronts []*front, listeners []*bind) {
	t := tr.t
	httpsPort := 0 // of the first TLS listener, which tandem's redirects name
	for _, b := range listeners {
		if b.tls {
			_, p, _ := net.SplitHostPort(b.addr)
			httpsPort, _ = strconv.Atoi(p)
			break
		}
	}
	for _, f := range fronts {
		var plain []*bind
		anyTLS := false
		for _, b := range f.binds {
			if b.tls {
				anyTLS = true
			} else {
				plain = append(plain, b)
			}
		}
		rule := f.rules.redirect
		code := f.rules.redirectCode
		if rule != nil && anyTLS && !tr.conditional(rule) {
			t.skip(rule, "without a condition this redirect would send HTTPS requests to HTTPS again: write it `if !{ ssl_fc }`")
			rule = nil
		}
		var redirecting, not []*back
		for _, b := range f.reaches {
			if b.rules.redirect != nil {
				redirecting = append(redirecting, b)
			} else {
				not = append(not, b)
			}
		}
		if rule == nil && len(redirecting) > 0 && len(not) == 0 {
			rule, code = redirecting[0].rules.redirect, redirecting[0].rules.redirectCode
		}
		if rule == nil {
			for _, b := range redirecting {
				if len(plain) > 0 {
					t.skip(b.rules.redirect, "tandem redirects a whole listener to HTTPS: frontend %s's plain listener also serves %s, which does not redirect", frontName(f), names(not))
				}
			}
			continue
		}
		if len(plain) == 0 {
			t.ok(rule)
			continue
		}
		t.ok(rule)
		for _, b := range redirecting {
			t.ok(b.rules.redirect)
		}
		if code != 301 {
			t.warn(rule, "tandem redirects with 301 Moved Permanently (browsers remember it); HAProxy answered %d here", code)
		}
		for _, b := range plain {
			b.redirect = true
			if httpsPort != 443 {
				// HAProxy's redirect keeps the Host: https://host/path, port
				// 443, whatever port its own TLS bind has.
				b.httpsPort = 443
			}
		}
	}
}

// conditional reports whether the redirect on l has a condition.
func (tr *translator) conditional(l *Line) bool {
	return slices.Contains(l.Words, "if") || slices.Contains(l.Words, "unless")
}

func names(bs []*back) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.name)
	}
	return strings.Join(s, ", ")
}

// hsts gives each TLS listener the Strict-Transport-Security value of its
// frontend, or of the backends it serves.
func (tr *translator) hsts(fronts []*front) {
	t := tr.t
	for _, f := range fronts {
		var tlsBinds []*bind
		for _, b := range f.binds {
			if b.tls {
				tlsBinds = append(tlsBinds, b)
			}
		}
		v := f.rules.hsts
		if v.set() && len(tlsBinds) == 0 {
			t.skip(v.l, "HSTS is sent over HTTPS only, and frontend %s has no TLS bind", frontName(f))
			continue
		}
		var without []*back
		for _, b := range f.reaches {
			bv := b.rules.hsts
			switch {
			case !bv.set():
				without = append(without, b)
			case len(tlsBinds) == 0:
			case !v.set():
				v = bv
				t.ok(bv.l)
			case bv.v != v.v:
				t.warn(bv.l, "tandem sends one HSTS value per listener: %q (line %d) is sent instead", v.v, v.l.Num)
			default:
				t.ok(bv.l)
			}
		}
		if !v.set() || len(tlsBinds) == 0 {
			continue
		}
		t.ok(v.l)
		if len(without) > 0 && !f.rules.hsts.set() {
			t.warn(v.l, "tandem sends HSTS on every response of a listener: %s, served by the same listener, gets it too", names(without))
		}
		for _, b := range tlsBinds {
			b.hsts = v.v
		}
	}
	for _, b := range tr.backs {
		if l := b.rules.hsts.l; l != nil && !tr.t.handled(l) {
			t.skip(l, "HSTS is sent over HTTPS only, and no TLS listener serves backend %s", b.name)
		}
		if l := b.rules.redirect; l != nil && !tr.t.handled(l) {
			t.ok(l) // served over TLS only: nothing to redirect
		}
	}
}

// parseHSTS reads a Strict-Transport-Security value into its fields, or
// keeps it verbatim (hsts.header) when it is not of the usual shape.
func parseHSTS(v string) config.HSTS {
	var h config.HSTS
	for _, part := range strings.Split(v, ";") {
		p := strings.TrimSpace(part)
		lower := strings.ToLower(p)
		switch {
		case p == "":
		case strings.HasPrefix(lower, "max-age="):
			n, err := strconv.Atoi(strings.Trim(p[len("max-age="):], `"`))
			if err != nil || n <= 0 {
				return config.HSTS{Header: v}
			}
			h.MaxAge = n
		case lower == "includesubdomains":
			h.IncludeSubDomains = true
		case lower == "preload":
			h.Preload = true
		default:
			return config.HSTS{Header: v}
		}
	}
	if h.MaxAge == 0 {
		return config.HSTS{Header: v}
	}
	return h
}

// single is the value of a setting tandem has once for every listener,
// from the frontends that set it: the first one's, said on the lines of
// others that differ.
func single[T comparable](t *tracker, fronts []*front, get func(*front) val[T], what string, show func(T) string) val[T] {
	var chosen val[T]
	for _, f := range fronts {
		switch v := get(f); {
		case !v.set():
		case !chosen.set():
			chosen = v
		case v.v != chosen.v:
			t.warn(v.l, "tandem has one %s for every listener: %s (line %d) applies", what, show(chosen.v), chosen.l.Num)
		}
	}
	return chosen
}

// limits sets the client-side bounds, one value for every listener.
func (tr *translator) limits(fronts []*front, cfg *config.Config, comments map[string]string) {
	t := tr.t
	client := single(t, fronts, func(f *front) val[time.Duration] { return f.timeoutClient }, "client timeout", fmtDuration)
	request := single(t, fronts, func(f *front) val[time.Duration] { return f.timeoutRequest }, "http-request timeout", fmtDuration)
	keepAlive := single(t, fronts, func(f *front) val[time.Duration] { return f.timeoutKeepAlive }, "keep-alive timeout", fmtDuration)
	// HAProxy's fallbacks: a request head is bounded by http-request, else
	// client; the wait between requests by http-keep-alive, else the others.
	header, idle := request, keepAlive
	if !header.set() {
		header = client
	}
	if !idle.set() {
		idle = header
	}
	set := func(v val[time.Duration], field *config.Duration, path, def string) {
		if !v.set() {
			return
		}
		if v.v == 0 {
			t.warn(v.l, "0 means no bound in HAProxy: tandem keeps its default %s", def)
			return
		}
		*field = config.Duration(v.v)
		comments[path] = tr.src(v.l)
	}
	set(header, &cfg.Limits.ReadHeaderTimeout, "limits.readHeaderTimeout", "10s")
	set(idle, &cfg.Limits.IdleTimeout, "limits.idleTimeout", "120s")
	set(tr.drain, &cfg.Limits.Drain, "limits.drain", "10s")
	if m := single(t, fronts, func(f *front) val[int] { return f.maxconn }, "limits.maxConnections", strconv.Itoa); m.set() {
		cfg.Limits.MaxConnections = m.v
		comments["limits.maxConnections"] = tr.src(m.l)
	}
	for _, f := range fronts {
		if v := f.httplog; v.set() && v.v {
			cfg.Log.Access = true
			comments["log.access"] = tr.src(v.l)
		}
	}
}
