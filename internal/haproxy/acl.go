package haproxy

import (
	"fmt"
	"slices"
	"strings"
)

// criterion is one ACL test: a sample fetch, how it matches, the values.
// Only the fetches tandem has a rule for are understood; any other is
// kept with known false, and a condition using it is not translated.
type criterion struct {
	fetch  string // hdr, path, ssl_fc (lower case, without arguments or "req.")
	arg    string // the fetch's first argument, lower case: a header name
	match  string // str, beg, sub, bool...
	ci     bool   // -i or ,lower
	values []string
	known  bool
}

// parseCriterion reads "FETCH [flags] [values]" as in an acl line or
// inside { }.
func parseCriterion(words []string) (criterion, error) {
	if len(words) == 0 {
		return criterion{}, fmt.Errorf("an ACL needs a fetch, e.g. hdr(host)")
	}
	c := criterion{match: "str"}
	fetch := words[0]
	fetch, convs, _ := strings.Cut(fetch, ",")
	for _, conv := range strings.Split(convs, ",") {
		switch conv {
		case "":
		case "lower":
			c.ci = true
		default:
			c.fetch = "converter " + conv
		}
	}
	name, args, hasArgs := strings.Cut(fetch, "(")
	name = strings.ToLower(strings.TrimPrefix(name, "req."))
	if hasArgs {
		if !strings.HasSuffix(args, ")") {
			return criterion{}, fmt.Errorf("%s: the ( is not closed", words[0])
		}
		a, _, _ := strings.Cut(strings.TrimSuffix(args, ")"), ",")
		c.arg = strings.ToLower(strings.TrimSpace(a))
	}
	for _, m := range []string{"beg", "end", "sub", "dom", "reg", "dir", "len", "cnt", "val", "ip"} {
		if base, ok := strings.CutSuffix(name, "_"+m); ok && (base == "hdr" || base == "path" || base == "url") {
			name, c.match = base, m
		}
	}
	if c.fetch == "" {
		c.fetch = name
	}
	rest := words[1:]
flags:
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		f := rest[0]
		rest = rest[1:]
		switch f {
		case "-i":
			c.ci = true
		case "--":
			break flags
		case "-m":
			if len(rest) == 0 {
				return criterion{}, fmt.Errorf("-m needs a match method")
			}
			c.match, rest = rest[0], rest[1:]
		case "-n", "-u":
		case "-f", "-M":
			// Patterns from a file: tandem import does not read it.
			c.fetch = "patterns from a file"
			if len(rest) > 0 {
				rest = rest[1:]
			}
		default:
			return criterion{}, fmt.Errorf("unknown ACL flag %s", f)
		}
	}
	c.values = rest
	switch {
	case c.fetch == "hdr" && c.arg != "":
		c.known = len(c.values) > 0
	case c.fetch == "path":
		c.known = len(c.values) > 0 && (c.match == "str" || c.match == "beg")
	case c.fetch == "ssl_fc":
		c.known = len(c.values) == 0
		c.match = "bool"
	}
	return c, nil
}

// hosts returns the Host values c matches exactly (hdr(host) -i a b), the
// port a client may add dropped; ok is false for any other test.
func (c criterion) hosts() (hosts []string, ok bool) {
	if !c.known || c.fetch != "hdr" || c.arg != "host" || c.match != "str" {
		return nil, false
	}
	for _, v := range c.values {
		h := strings.ToLower(v)
		if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.Contains(h[:i], ":") {
			h = h[:i]
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, true
}

// headerHas reports whether c tests that header holds token (as an
// element of its comma-separated list, or as a substring).
func (c criterion) headerHas(header, token string) bool {
	if !c.known || c.fetch != "hdr" || c.arg != header || (c.match != "str" && c.match != "sub") || !c.ci {
		return false
	}
	return slices.ContainsFunc(c.values, func(v string) bool { return strings.EqualFold(v, token) })
}

// literal is one test of a condition, maybe negated: a named ACL (the OR
// of its lines' criteria) or an anonymous one in braces.
type literal struct {
	neg  bool
	name string // "" for an anonymous ACL
	crit []criterion
}

// condition is HAProxy's "if|unless A B || C": an OR of terms, each the
// AND of its literals.
type condition struct {
	unless bool
	terms  [][]literal
	acls   []string // named ACLs it uses
}

// acls are the named ACLs of one section, and which rules not
// translated use them.
type acls struct {
	byName map[string][]criterion
	lines  map[string][]*Line
	users  []aclUse
}

type aclUse struct {
	name string
	l    *Line
}

func newACLs() *acls { return &acls{byName: map[string][]criterion{}, lines: map[string][]*Line{}} }

// predefined ACLs HAProxy knows without an acl line.
var predefined = []string{"TRUE", "FALSE", "HTTP", "HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_CONTENT", "HTTP_URL_ABS",
	"HTTP_URL_SLASH", "HTTP_URL_STAR", "LOCALHOST", "METH_CONNECT", "METH_DELETE", "METH_GET", "METH_HEAD", "METH_OPTIONS",
	"METH_POST", "METH_PUT", "METH_TRACE", "RDP_COOKIE", "REQ_CONTENT", "WAIT_END"}

// parseCondition reads the words after "if" or "unless" (words[0]).
func (a *acls) parseCondition(words []string) (*condition, error) {
	if len(words) == 0 || (words[0] != "if" && words[0] != "unless") {
		return nil, fmt.Errorf("want if or unless before a condition")
	}
	cond := &condition{unless: words[0] == "unless"}
	var term []literal
	rest := words[1:]
	if len(rest) == 0 {
		return nil, fmt.Errorf("%s without a condition", words[0])
	}
	for len(rest) > 0 {
		w := rest[0]
		rest = rest[1:]
		if w == "||" || strings.EqualFold(w, "or") {
			if len(term) == 0 {
				return nil, fmt.Errorf("%s with nothing before it", w)
			}
			cond.terms, term = append(cond.terms, term), nil
			continue
		}
		lit := literal{}
		for strings.HasPrefix(w, "!") {
			lit.neg = !lit.neg
			w = w[1:]
			if w == "" {
				if len(rest) == 0 {
					return nil, fmt.Errorf("! with nothing after it")
				}
				w, rest = rest[0], rest[1:]
			}
		}
		switch {
		case w == "{":
			end := slices.Index(rest, "}")
			if end < 0 {
				return nil, fmt.Errorf("the { of an anonymous ACL is not closed")
			}
			c, err := parseCriterion(rest[:end])
			if err != nil {
				return nil, err
			}
			lit.crit, rest = []criterion{c}, rest[end+1:]
		case strings.HasPrefix(w, "{"):
			return nil, fmt.Errorf("%q: HAProxy wants a blank after {", w)
		case slices.Contains(predefined, w):
			lit.name = w
			lit.crit = []criterion{{fetch: "predefined " + w}}
		default:
			crit, ok := a.byName[w]
			if !ok {
				return nil, fmt.Errorf("no ACL named %q is defined in this section", w)
			}
			lit.name, lit.crit = w, crit
			if !slices.Contains(cond.acls, w) {
				cond.acls = append(cond.acls, w)
			}
		}
		term = append(term, lit)
	}
	if len(term) == 0 {
		return nil, fmt.Errorf("a condition ends with an OR")
	}
	cond.terms = append(cond.terms, term)
	return cond, nil
}

// hosts returns the hosts of a condition that is an OR of Host tests
// (if host_a || { hdr(host) -i b.example }); ok is false for any other.
func (c *condition) hosts() (hosts []string, ok bool) {
	if c == nil || c.unless {
		return nil, false
	}
	for _, term := range c.terms {
		if len(term) != 1 || term[0].neg {
			return nil, false
		}
		for _, cr := range term[0].crit {
			h, ok := cr.hosts()
			if !ok {
				return nil, false
			}
			for _, x := range h {
				if !slices.Contains(hosts, x) {
					hosts = append(hosts, x)
				}
			}
		}
	}
	return hosts, len(hosts) > 0
}

// plainHTTP reports whether the condition holds exactly on plain HTTP:
// if !{ ssl_fc }, or unless { ssl_fc }.
func (c *condition) plainHTTP() bool {
	if c == nil || len(c.terms) != 1 || len(c.terms[0]) != 1 {
		return false
	}
	lit := c.terms[0][0]
	return len(lit.crit) == 1 && lit.crit[0].known && lit.crit[0].fetch == "ssl_fc" && lit.neg != c.unless
}

// tls reports whether the condition holds exactly over TLS.
func (c *condition) tls() bool {
	if c == nil || len(c.terms) != 1 || len(c.terms[0]) != 1 {
		return false
	}
	lit := c.terms[0][0]
	return len(lit.crit) == 1 && lit.crit[0].known && lit.crit[0].fetch == "ssl_fc" && lit.neg == c.unless
}

// websocketGuard returns the paths of a condition that denies a request
// to a path unless it carries Connection: upgrade and Upgrade: websocket:
//
//	if path_ws !hdr_upgrade OR path_ws !hdr_connection
//
// (in either order), what tandem's websocket guard does.
func (c *condition) websocketGuard() (paths []string, ok bool) {
	if c == nil || c.unless || len(c.terms) != 2 {
		return nil, false
	}
	var sawUpgrade, sawConnection bool
	for _, term := range c.terms {
		if len(term) != 2 {
			return nil, false
		}
		var p []string
		var header string
		for _, lit := range term {
			switch {
			case !lit.neg && allPaths(lit.crit):
				for _, cr := range lit.crit {
					p = append(p, cr.values...)
				}
			case lit.neg && allHave(lit.crit, "upgrade", "websocket"):
				header = "upgrade"
			case lit.neg && allHave(lit.crit, "connection", "upgrade"):
				header = "connection"
			default:
				return nil, false
			}
		}
		if p == nil || header == "" {
			return nil, false
		}
		slices.Sort(p)
		p = slices.Compact(p)
		if paths != nil && !slices.Equal(paths, p) {
			return nil, false
		}
		paths = p
		sawUpgrade = sawUpgrade || header == "upgrade"
		sawConnection = sawConnection || header == "connection"
	}
	return paths, sawUpgrade && sawConnection
}

func allPaths(cs []criterion) bool {
	return len(cs) > 0 && !slices.ContainsFunc(cs, func(c criterion) bool { return !c.known || c.fetch != "path" })
}

func allHave(cs []criterion, header, token string) bool {
	return len(cs) > 0 && !slices.ContainsFunc(cs, func(c criterion) bool { return !c.headerHas(header, token) })
}
