package haproxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// frontOnlyOptions and backOnlyOptions are the options of one side.
var (
	frontOnlyOptions = []string{"httplog", "httpslog", "tcplog", "dontlognull", "dontlog-normal", "log-separate-errors",
		"http-ignore-probes", "clitcpka", "socket-stats", "contstats", "idle-close-on-response", "http-drop-request-trailers"}
	backOnlyOptions = []string{"httpchk", "redispatch", "allbackups", "persist", "log-health-checks", "srvtcpka",
		"ssl-hello-chk", "tcp-check", "ldap-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "spop-check",
		"external-check", "prefer-last-server", "checkcache", "http-pretend-keepalive", "splice-response"}
)

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *ctx) option(l *Line) {
	t := c.tr.t
	words := l.Words
	negated := words[0] == "no"
	if negated {
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "option" {
		t.skip(l, "tandem import does not know this directive")
		return
	}
	name, args := words[1], words[2:]
	switch {
	case has(frontOnlyOptions, name) && c.f == nil:
		c.notHere(l, "frontend")
		return
	case has(backOnlyOptions, name) && c.b == nil:
		c.notHere(l, "backend")
		return
	}
	switch name {
	case "httpchk":
		if negated {
			c.b.httpchk = nil
			t.ok(l)
			return
		}
		c.b.httpchk = l
		c.httpchk(l, args)
	case "redispatch":
		if negated {
			t.warn(l, "tandem always retries a failed connection on the next server")
		} else {
			t.ok(l)
		}
	case "httplog", "httpslog":
		c.f.httplog.put(!negated, l)
		t.ok(l)
	case "dontlognull", "log-health-checks", "http-keep-alive", "abortonclose":
		// tandem's own behaviour: no line for a connection that sent no
		// request, a line for every change of a server's health, keep-alive
		// on both sides, a client that goes away ends the exchange.
		t.ok(l)
	case "forwardfor":
		if negated {
			t.skip(l, "tandem always sends X-Forwarded-For, -Host, -Proto and Forwarded (believing a client's own only from trustedProxies)")
			return
		}
		if len(args) > 0 {
			t.skip(l, "%s: tandem always sends X-Forwarded-For for every client, under that name", strings.Join(args, " "))
		}
		t.ok(l)
	case "http-server-close", "httpclose", "forceclose", "http-tunnel":
		t.skip(l, "tandem keeps client and server connections alive (a small pool per server)")
	case "http-buffer-request":
		t.skip(l, "tandem streams request bodies, and keeps up to retry.bufferBytes of one to replay it")
	case "ssl-hello-chk", "tcp-check", "ldap-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "spop-check", "external-check":
		t.skip(l, "tandem checks over HTTP (health.path, health.expect); this check is not translated")
	case "allbackups":
		t.skip(l, "tandem sends to one backup at a time in failover mode, the first in priority order")
	case "persist", "prefer-last-server":
		t.skip(l, "a pinned or sticky server that is down gives way to another one")
	default:
		t.skip(l, "tandem has no such option")
	}
}

// httpchk reads option httpchk [METHOD] URI [VERSION[\r\nHeader: value...]].
func (c *ctx) httpchk(l *Line, args []string) {
	b := c.b
	method, uri, version := "OPTIONS", "/", ""
	switch len(args) {
	case 0:
	case 1:
		uri = args[0]
	case 2:
		method, uri = args[0], args[1]
	case 3:
		method, uri, version = args[0], args[1], args[2]
	default:
		c.tr.t.fail(l, "option httpchk wants [METHOD] URI [VERSION], got %d words", len(args))
		return
	}
	if !c.checkMethod(l, method) || !c.checkPath(l, uri) {
		return
	}
	if _, headers, ok := strings.Cut(version, "\r\n"); ok {
		for _, h := range strings.Split(headers, "\r\n") {
			name, value, _ := strings.Cut(h, ":")
			if strings.EqualFold(strings.TrimSpace(name), "host") {
				b.chkHost.put(strings.TrimSpace(value), l)
			} else if strings.TrimSpace(h) != "" {
				c.tr.t.skip(l, "check header %q: tandem's check sends Host (health.host) and X-Tandem-Role only", name)
			}
		}
	}
	c.tr.t.ok(l)
}

func (c *ctx) timeout(l *Line) {
	t := c.tr.t
	if len(l.Words) != 3 {
		t.fail(l, "timeout wants a name and a time, e.g. timeout connect 5s")
		return
	}
	name := l.Words[1]
	d, err := parseTime(l.Words[2])
	if err != nil {
		t.fail(l, "%v", err)
		return
	}
	frontSide := map[string]func(*front) *val[time.Duration]{
		"client":          func(f *front) *val[time.Duration] { return &f.timeoutClient },
		"http-request":    func(f *front) *val[time.Duration] { return &f.timeoutRequest },
		"http-keep-alive": func(f *front) *val[time.Duration] { return &f.timeoutKeepAlive },
	}
	backSide := map[string]func(*back) *val[time.Duration]{
		"connect": func(b *back) *val[time.Duration] { return &b.tConnect },
		"server":  func(b *back) *val[time.Duration] { return &b.tServer },
		"check":   func(b *back) *val[time.Duration] { return &b.tCheck },
	}
	if get := frontSide[name]; get != nil && c.f != nil {
		get(c.f).put(d, l)
		t.ok(l)
		return
	}
	if get := backSide[name]; get != nil && c.b != nil {
		get(c.b).put(d, l)
		t.ok(l)
		return
	}
	switch {
	case frontSide[name] != nil:
		c.notHere(l, "frontend")
		return
	case backSide[name] != nil:
		c.notHere(l, "backend")
		return
	}
	switch name {
	case "queue":
		t.skip(l, "tandem does not queue requests per server")
	case "tunnel":
		t.skip(l, "tandem puts no idle bound on an upgraded connection (websocket): the client and server keep it alive")
	case "client-fin", "server-fin":
		t.skip(l, "tandem closes a half-closed connection with its exchange")
	case "tarpit":
		t.skip(l, "tandem has no tarpit")
	default:
		t.skip(l, "tandem has no such timeout")
	}
}

// ruleOwner is where a section's HTTP rules go: a backend's group, or a
// frontend's listeners.
func (c *ctx) ruleOwner() *rules {
	if c.b != nil {
		return &c.b.rules
	}
	return &c.f.rules
}

// redirect reads "redirect scheme https [code N] [options] [if|unless COND]"
// (words after "redirect"), as a directive or an http-request action.
func (c *ctx) redirect(l *Line, words []string) {
	t := c.tr.t
	if len(words) < 2 || words[0] != "scheme" {
		t.skip(l, "tandem's only redirect is HTTP to HTTPS (redirectHTTPS on a plain listener): redirect scheme https")
		return
	}
	if !strings.EqualFold(words[1], "https") {
		t.skip(l, "tandem's only redirect is to https")
		return
	}
	code := 302
	rest := words[2:]
	var ignored []string
	for len(rest) > 0 && rest[0] != "if" && rest[0] != "unless" {
		switch rest[0] {
		case "code":
			if len(rest) < 2 {
				t.fail(l, "code wants a status")
				return
			}
			n, err := strconv.Atoi(rest[1])
			if err != nil {
				t.fail(l, "code %q: want 301, 302, 303, 307 or 308", rest[1])
				return
			}
			code, rest = n, rest[2:]
		case "set-cookie", "clear-cookie":
			ignored, rest = append(ignored, strings.Join(rest[:min(2, len(rest))], " ")), rest[min(2, len(rest)):]
		default:
			ignored, rest = append(ignored, rest[0]), rest[1:]
		}
	}
	cond, ok := c.condition(l, rest)
	if !ok {
		return
	}
	if cond != nil && !cond.plainHTTP() {
		c.used(cond, false, l)
		t.skip(l, "tandem redirects every request of a plain listener (redirectHTTPS); this condition is not !{ ssl_fc }")
		return
	}
	c.used(cond, true, l)
	r := c.ruleOwner()
	r.redirect, r.redirectCode = l, code
	t.pending[l] = true
	if len(ignored) > 0 {
		t.skip(l, "redirect options not translated: %s (tandem keeps the path and query)", strings.Join(ignored, ", "))
	}
}

func (c *ctx) httpRequest(l *Line) {
	t := c.tr.t
	args := l.Words[1:]
	if len(args) == 0 {
		t.fail(l, "http-request wants an action")
		return
	}
	action, rest := args[0], args[1:]
	condAt := len(rest)
	for i, w := range rest {
		if w == "if" || w == "unless" {
			condAt = i
			break
		}
	}
	switch action {
	case "redirect":
		c.redirect(l, rest)
		return
	case "deny":
		cond, ok := c.condition(l, rest[condAt:])
		if !ok {
			return
		}
		// tandem's guard answers 403, HAProxy's default.
		plain403 := condAt == 0 || condAt == 2 && rest[0] == "deny_status" && rest[1] == "403"
		paths, guard := cond.websocketGuard()
		why := "tandem's only deny rule is its websocket guard (403 to a websocket path without Connection: upgrade and Upgrade: websocket), which this is not: the requests it refused will be served"
		guard = guard && plain403
		for _, p := range paths {
			if err := config.AbsPath(p); err != nil && guard {
				guard, why = false, fmt.Sprintf("a websocket guard of a path tandem cannot guard (websocket.paths: %v): the requests it refused will be served", err)
			}
		}
		if guard {
			r := c.ruleOwner()
			r.guard = append(r.guard, paths...)
			r.guardLines = append(r.guardLines, l)
		}
		c.settle(l, cond, guard, why)
		return
	case "set-header", "add-header":
		cond, ok := c.condition(l, rest[condAt:])
		if !ok {
			return
		}
		// What tandem sends itself.
		xfProto := condAt == 2 && strings.EqualFold(rest[0], "X-Forwarded-Proto") &&
			(rest[1] == "https" && (cond == nil || cond.tls()) || rest[1] == "http" && cond.plainHTTP())
		c.settle(l, cond, xfProto, "tandem does not rewrite request headers (it sets X-Forwarded-For, -Host, -Proto and Forwarded itself)")
		return
	case "auth", "tarpit", "reject", "silent-drop":
		cond, _ := c.condition(l, rest[condAt:])
		c.settle(l, cond, false, "tandem has no such access rule: the requests it refused will be served")
		return
	}
	cond, _ := c.condition(l, rest[condAt:])
	c.settle(l, cond, false, "tandem does not rewrite or act on requests beyond its websocket guard and HTTPS redirect")
}

func (c *ctx) httpResponse(l *Line) {
	t := c.tr.t
	args := l.Words[1:]
	condAt := len(args)
	for i, w := range args {
		if w == "if" || w == "unless" {
			condAt = i
			break
		}
	}
	cond, ok := c.condition(l, args[condAt:])
	if !ok {
		return
	}
	if condAt == 3 && (args[0] == "set-header" || args[0] == "add-header") && strings.EqualFold(args[1], "Strict-Transport-Security") &&
		(cond == nil || cond.tls()) {
		if err := config.HSTSMaxAge(parseHSTS(args[2])); err != nil {
			c.settle(l, cond, false, fmt.Sprintf("Strict-Transport-Security %q, which browsers ignore: tandem's hsts.maxAge is %v", args[2], err))
			return
		}
		c.used(cond, true, l)
		c.ruleOwner().hsts.put(args[2], l)
		t.pending[l] = true
		return
	}
	c.settle(l, cond, false, "tandem does not rewrite responses; it adds Strict-Transport-Security on HTTPS listeners (hsts:)")
}
