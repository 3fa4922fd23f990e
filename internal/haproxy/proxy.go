package haproxy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// front is what a frontend (or the front half of a listen) says.
type front struct {
	sec            *section
	binds          []*bind
	defaultBackend val[string]
	routes         []hostRoute
	rules          rules
	// Client-side bounds: limits.* (one value for every listener in tandem).
	timeoutClient, timeoutRequest, timeoutKeepAlive val[time.Duration]
	maxconn                                         val[int]
	httplog                                         val[bool]
	// reaches are the backends its rules may send traffic to.
	reaches []*back
}

// hostRoute is a use_backend by Host.
type hostRoute struct {
	backend string
	hosts   []string
	l       *Line
}

// rules are the HTTP rules of a section that tandem has per listener or
// group: the HTTPS redirect, HSTS, the websocket guard.
type rules struct {
	redirect     *Line
	redirectCode int
	hsts         val[string]
	guard        []string // paths
	guardLines   []*Line
}

// back is what a backend (or the back half of a listen) says.
type back struct {
	sec           *section
	name          string
	servers       []*server
	defServer     serverOpts
	pins          []pin
	rules         rules
	chkMethod     val[string]
	chkPath       val[string]
	chkHost       val[string]
	httpchk       *Line
	expStatus     val[config.StatusSet]
	expBody       val[string]
	expRegexp     val[string]
	tConnect      val[time.Duration]
	tServer       val[time.Duration]
	tCheck        val[time.Duration]
	retries       val[int]
	balance       val[string]
	cookie        val[[]string] // the cookie line's words after "cookie"
	closeOnSwitch []*Line
	observeL7     val[bool]
	errorLimit    val[int]
	// reachedBy are the frontends whose rules may send traffic here.
	reachedBy []*front
	// hosts route to it (use_backend), from hostLines.
	hosts     []string
	hostLines []*Line
	// ctx is where its lines were read, to make its group once the
	// frontends are known; out is that group, nil if it cannot be made.
	ctx *ctx
	out *groupOut
}

type pin struct {
	host, server string
	l            *Line
}

// ctx is the proxy section being read.
type ctx struct {
	tr   *translator
	sec  *section
	f    *front // nil in a backend
	b    *back  // nil in a frontend
	acls *acls
	// inherited: the line comes from a defaults section, where a setting
	// of the other side (a backend's, read for a frontend) is simply not
	// for this section.
	inherited bool
}

func (tr *translator) proxy(s *section) {
	c := &ctx{tr: tr, sec: s, acls: newACLs()}
	inherited, own := effective(s)
	mode, modeLine := "", (*Line)(nil)
	for _, l := range append(append([]*Line(nil), inherited...), own...) {
		if l.Words[0] == "mode" && len(l.Words) == 2 {
			mode, modeLine = l.Words[1], l
		}
	}
	switch mode {
	case "http":
		tr.t.ok(modeLine)
	case "":
		tr.t.warn(s.Head, "no mode http here or in its defaults: HAProxy proxies this section as TCP; tandem translates it as HTTP")
	default:
		tr.leaveOut(s, fmt.Sprintf("mode %s (line %d): tandem proxies HTTP only", mode, modeLine.Num))
		return
	}
	if statsOnly(s) {
		tr.leaveOut(s, "a statistics page: tandem's status page and metrics are on its admin listener (admin.address, loopback by default): `/`, `/metrics`")
		return
	}
	tr.t.ok(s.Head)
	if s.frontendSide() {
		c.f = &front{sec: s}
		tr.fronts = append(tr.fronts, c.f)
		if s.Kind == kListen {
			c.f.defaultBackend.put(s.Name, s.Head)
		}
	}
	if s.backendSide() {
		c.b = &back{sec: s, name: s.Name}
		if tr.byName[s.Name] != nil {
			tr.t.fail(s.Head, "a backend named %q is already defined (line %d)", s.Name, tr.byName[s.Name].sec.Head.Num)
		} else {
			tr.byName[s.Name] = c.b
			tr.backs = append(tr.backs, c.b)
		}
	}
	c.inherited = true
	for _, l := range inherited {
		c.directive(l)
	}
	c.inherited = false
	for _, l := range own {
		c.directive(l)
	}
	if c.b != nil {
		c.b.ctx = c
	}
	c.finishACLs(own)
}

// statsOnly reports whether s only serves HAProxy's statistics page.
func statsOnly(s *section) bool {
	stats := false
	for _, l := range s.Lines {
		switch l.Words[0] {
		case "stats":
			stats = true
		case "server", "use_backend", "default_backend":
			return false
		}
	}
	return stats && s.frontendSide()
}

// leaveOut reports a proxy section, and each of its lines, as not
// translated, and why.
func (tr *translator) leaveOut(s *section, why string) {
	tr.t.skip(s.Head, "%s; this section's %d line(s) are left out", why, len(s.Lines))
	tr.leftOut[s.Name] = why
	for _, l := range s.Lines {
		tr.t.skip(l, "part of %s %s, left out", s.Kind, s.Name)
	}
}

// notHere reports a directive of the other side: silent for a defaults
// line (it is for other sections), a note for the section's own.
func (c *ctx) notHere(l *Line, side string) {
	if !c.inherited {
		c.tr.t.skip(l, "a %s setting: it has no effect in a %s", side, c.sec.Kind)
	}
}

func (c *ctx) directive(l *Line) {
	t := c.tr.t
	kw, args := l.Words[0], l.Words[1:]
	switch kw {
	case "mode":
		return // read above
	case "acl":
		c.acl(l)
		return
	case "bind", "default_backend", "use_backend", "monitor-uri", "capture", "unique-id-format", "unique-id-header", "declare":
		if c.f == nil {
			c.notHere(l, "frontend")
			return
		}
		c.frontDirective(l)
		return
	case "server", "default-server", "use-server", "balance", "cookie", "http-check", "retries", "retry-on",
		"hash-type", "http-reuse", "fullconn", "stick-table", "stick", "persist", "load-server-state-from-file", "dynamic-cookie-key":
		if c.b == nil {
			c.notHere(l, "backend")
			return
		}
		c.backDirective(l)
		return
	case "timeout":
		c.timeout(l)
		return
	case "maxconn":
		if c.f == nil {
			c.notHere(l, "frontend")
			return
		}
		n, err := parseCount(strings.Join(args, " "), 1, 1<<30)
		if err != nil {
			t.fail(l, "%v", err)
			return
		}
		c.f.maxconn.put(n, l)
		t.ok(l)
		return
	case "option", "no":
		c.option(l)
		return
	case "redirect":
		c.redirect(l, args)
		return
	case "http-request":
		c.httpRequest(l)
		return
	case "http-response", "http-after-response":
		c.httpResponse(l)
		return
	case "log":
		t.skip(l, "tandem logs to stderr (log.format text or json, log.level); log.access: true logs each request")
		return
	case "errorfile", "errorloc", "errorloc302", "errorloc303", "errorfiles", "http-error":
		t.skip(l, "tandem answers its own errors with short bodies that name nothing internal")
		return
	case "stats":
		t.skip(l, "tandem's status page and metrics are on its admin listener (admin.address, loopback by default): `/`, `/metrics`")
		return
	case "compression", "filter":
		t.skip(l, "tandem passes bodies through as the server sends them: no compression or filters")
		return
	case "tcp-request", "tcp-response":
		t.skip(l, "tandem has no TCP-level rules")
		return
	case "description", "id", "enabled", "disabled", "email-alert", "email-alerts", "server-state-file-name":
		t.skip(l, "tandem has no such setting")
		return
	}
	t.skip(l, "tandem import does not know this directive")
}

func (c *ctx) acl(l *Line) {
	if len(l.Words) < 3 {
		c.tr.t.fail(l, "acl wants a name and a test, e.g. acl is_api path_beg /api")
		return
	}
	name := l.Words[1]
	cr, err := parseCriterion(l.Words[2:])
	if err != nil {
		c.tr.t.fail(l, "%v", err)
		return
	}
	c.acls.byName[name] = append(c.acls.byName[name], cr)
	c.acls.lines[name] = append(c.acls.lines[name], l)
}

// condition parses a condition (words from "if" or "unless" on),
// reporting a malformed one on l; nil, true when there is none.
func (c *ctx) condition(l *Line, words []string) (*condition, bool) {
	if len(words) == 0 {
		return nil, true
	}
	cond, err := c.acls.parseCondition(words)
	if err != nil {
		c.tr.t.fail(l, "%v", err)
		return nil, false
	}
	return cond, true
}

// settle records what became of rule l with condition cond (may be
// nil): translated, or not for the reason given; and so of its ACLs.
func (c *ctx) settle(l *Line, cond *condition, translated bool, why string) {
	c.used(cond, translated, l)
	if translated {
		c.tr.t.ok(l)
	} else {
		c.tr.t.skip(l, "%s", why)
	}
}

// hostRule reads the condition of a rule by Host (use_backend,
// use-server) from words; ok is false, the rule reported, for any other.
func (c *ctx) hostRule(l *Line, words []string, what, field string) (hosts []string, ok bool) {
	cond, ok := c.condition(l, words)
	if !ok {
		return nil, false
	}
	hosts, ok = cond.hosts()
	if !ok {
		c.settle(l, cond, false, "tandem "+what+" by Host only ("+field+"); this condition is not an exact Host test such as { hdr(host) -i www.example.com }")
		return nil, false
	}
	for _, h := range hosts {
		if err := config.ExactHost(h); err != nil {
			c.settle(l, cond, false, fmt.Sprintf("tandem %s by host name (%s): %v", what, field, err))
			return nil, false
		}
	}
	c.used(cond, true, l)
	return hosts, true
}

// used records that the named ACLs of cond serve a rule of line l, which
// was translated or not.
func (c *ctx) used(cond *condition, translated bool, l *Line) {
	if cond == nil {
		return
	}
	for _, name := range cond.acls {
		if translated {
			c.tr.t.ok(c.acls.lines[name]...)
		} else {
			c.acls.users = append(c.acls.users, aclUse{name, l})
		}
	}
}

// finishACLs reports the ACLs no translated rule uses.
func (c *ctx) finishACLs(own []*Line) {
	for _, l := range own {
		if l.Words[0] != "acl" || c.tr.t.handled(l) || len(l.Words) < 2 {
			continue
		}
		var by []string
		for _, u := range c.acls.users {
			if u.name == l.Words[1] {
				by = append(by, fmt.Sprint(u.l.Num))
			}
		}
		by = slices.Compact(by)
		if len(by) == 0 {
			c.tr.t.skip(l, "no rule uses ACL %s", l.Words[1])
		} else {
			c.tr.t.skip(l, "ACL %s is used only by line(s) %s, not translated", l.Words[1], strings.Join(by, ", "))
		}
	}
}

// bindOf is f's bind of addr (a listener's address), if it has one.
func (f *front) bindOf(addr string) *bind {
	for _, b := range f.binds {
		if b.addr == addr {
			return b
		}
	}
	return nil
}
