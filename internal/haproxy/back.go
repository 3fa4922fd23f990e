package haproxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// serverOpts are the options of a server or default-server line.
type serverOpts struct {
	check          val[bool]
	port           val[int]
	inter, fastint val[time.Duration]
	rise, fall     val[int]
	backup         val[bool]
	weight         val[int]
	disabled       val[bool]
	closeOnSwitch  *Line
	observeL7      val[bool]
	errorLimit     val[int]
	cookie         val[string]
}

// server is one server line.
type server struct {
	l          *Line
	name, addr string
	port       int
	opts       serverOpts
}

// serverArity is how many arguments each server option takes; the ones
// tandem has no use for are named in leftOut with the reason.
var serverArity = map[string]int{
	"port": 1, "inter": 1, "fastinter": 1, "downinter": 1, "rise": 1, "fall": 1, "weight": 1, "maxconn": 1, "maxqueue": 1,
	"minconn": 1, "cookie": 1, "on-marked-down": 1, "on-marked-up": 1, "on-error": 1, "error-limit": 1, "observe": 1, "id": 1,
	"addr": 1, "sni": 1, "verify": 1, "verifyhost": 1, "ca-file": 1, "crt": 1, "crl-file": 1, "resolvers": 1, "resolve-prefer": 1,
	"resolve-net": 1, "resolve-opts": 1, "init-addr": 1, "slowstart": 1, "agent-port": 1, "agent-inter": 1, "agent-addr": 1,
	"agent-send": 1, "check-sni": 1, "check-alpn": 1, "check-proto": 1, "alpn": 1, "npn": 1, "proto": 1, "pool-max-conn": 1,
	"pool-purge-delay": 1, "pool-low-conn": 1, "pool-conn-name": 1, "max-reuse": 1, "source": 1, "track": 1, "redir": 1, "ws": 1,
	"namespace": 1, "ciphers": 1, "ciphersuites": 1, "curves": 1, "sigalgs": 1, "client-sigalgs": 1, "tcp-ut": 1,
	"set-proxy-v2-tlv-fmt": 1, "proxy-v2-options": 1, "log-proto": 1, "hash-key": 1, "guid": 1, "shard": 1, "idle-ping": 1,
	"ssl-min-ver": 1, "ssl-max-ver": 1, "usesrc": 1, "interface": 1, "weight-modifier": 1, "strict-maxconn": 0,
}

// leftOut says why a server option is not translated.
func leftOut(o string) string {
	switch {
	case o == "downinter":
		return "tandem checks a down server every health.fastInterval"
	case o == "maxconn" || o == "maxqueue" || o == "minconn" || o == "strict-maxconn":
		return "tandem does not queue requests per server"
	case o == "slowstart":
		return "a server back up takes its full share at once"
	case o == "addr":
		return "tandem checks the server's own address (health.port may differ)"
	case strings.HasPrefix(o, "agent-") || o == "agent-check":
		return "tandem has no agent checks"
	case strings.HasPrefix(o, "pool-") || o == "max-reuse" || o == "idle-ping":
		return "tandem keeps a small pool of idle connections per server itself"
	case o == "track":
		return "tandem checks every server itself"
	case o == "resolvers" || strings.HasPrefix(o, "resolve-") || o == "init-addr":
		return "tandem looks a server's host name up again every 2s through the system resolver"
	}
	return "tandem has no such server setting"
}

// serverOptions reads the options of a server or default-server line
// into o; options not translated are reported on l.
func (c *ctx) serverOptions(l *Line, words []string, o *serverOpts) bool {
	t := c.tr.t
	var notTranslated []string
	ok := true
	for i := 0; i < len(words); i++ {
		w := words[i]
		arg := ""
		if serverArity[w] == 1 {
			if i+1 >= len(words) {
				t.fail(l, "%s wants a value", w)
				return false
			}
			i++
			arg = words[i]
		}
		bad := func(err error) {
			t.fail(l, "%s %s: %v", w, arg, err)
			ok = false
		}
		switch w {
		case "check":
			o.check.put(true, l)
		case "no-check":
			o.check.put(false, l)
		case "backup":
			o.backup.put(true, l)
		case "no-backup":
			o.backup.put(false, l)
		case "disabled":
			o.disabled.put(true, l)
		case "enabled":
			o.disabled.put(false, l)
		case "port":
			n, err := parseCount(arg, 1, 65535)
			if err != nil {
				bad(err)
				continue
			}
			o.port.put(n, l)
		case "inter", "fastinter":
			d, err := parseTime(arg)
			if err != nil {
				bad(err)
				continue
			}
			if w == "inter" {
				o.inter.put(d, l)
			} else {
				o.fastint.put(d, l)
			}
		case "rise", "fall":
			n, err := parseCount(arg, 1, 1000)
			if err != nil {
				bad(err)
				continue
			}
			if w == "rise" {
				o.rise.put(n, l)
			} else {
				o.fall.put(n, l)
			}
		case "weight":
			n, err := parseCount(arg, 0, 256)
			if err != nil {
				bad(err)
				continue
			}
			o.weight.put(n, l)
		case "cookie":
			o.cookie.put(arg, l)
		case "on-marked-down", "on-marked-up":
			if w == "on-marked-down" && arg == "shutdown-sessions" || w == "on-marked-up" && arg == "shutdown-backup-sessions" {
				o.closeOnSwitch = l
			} else {
				notTranslated = append(notTranslated, w+" "+arg+" (tandem closes the websockets of a server that lost the active role: websocket.onSwitch)")
			}
		case "observe":
			o.observeL7.put(arg == "layer7", l)
		case "error-limit":
			n, err := parseCount(arg, 1, 1000)
			if err != nil {
				bad(err)
				continue
			}
			o.errorLimit.put(n, l)
		case "on-error":
			if arg != "mark-down" && arg != "fastinter" && arg != "fail-check" && arg != "sudden-death" {
				notTranslated = append(notTranslated, w+" "+arg)
			}
		case "ssl", "check-ssl":
			t.fail(l, "%s: tandem speaks plain HTTP to its servers; a TLS server would refuse it", w)
			ok = false
		case "send-proxy", "send-proxy-v2", "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn", "check-send-proxy":
			t.fail(l, "%s: tandem does not send the PROXY protocol; this server expects it", w)
			ok = false
		case "id", "guid", "hash-key", "shard", "non-stick", "stick", "no-ssl", "no-send-proxy", "no-check-ssl",
			"no-verifyhost", "no-agent-check", "allow-0rtt", "tfo", "no-tfo", "no-tls-tickets", "tls-tickets", "ws":
			// Nothing for tandem to do, nor to lose.
		default:
			if serverArity[w] == 1 {
				notTranslated = append(notTranslated, w+" "+arg+" ("+leftOut(w)+")")
			} else {
				notTranslated = append(notTranslated, w+" ("+leftOut(w)+")")
			}
		}
	}
	if len(notTranslated) > 0 {
		t.skip(l, "server options not translated: %s", strings.Join(notTranslated, "; "))
	}
	return ok
}

// over lays the options set in o over d.
func (o serverOpts) over(d serverOpts) serverOpts {
	r := d
	layer(&r.check, o.check)
	layer(&r.port, o.port)
	layer(&r.inter, o.inter)
	layer(&r.fastint, o.fastint)
	layer(&r.rise, o.rise)
	layer(&r.fall, o.fall)
	layer(&r.backup, o.backup)
	layer(&r.weight, o.weight)
	layer(&r.disabled, o.disabled)
	layer(&r.observeL7, o.observeL7)
	layer(&r.errorLimit, o.errorLimit)
	layer(&r.cookie, o.cookie)
	if o.closeOnSwitch != nil {
		r.closeOnSwitch = o.closeOnSwitch
	}
	return r
}

func (c *ctx) backDirective(l *Line) {
	t := c.tr.t
	kw, args := l.Words[0], l.Words[1:]
	b := c.b
	switch kw {
	case "server":
		if len(args) < 2 {
			t.fail(l, "server wants a name and an address, e.g. server app1 10.0.0.1:8080 check")
			return
		}
		s := &server{l: l, name: args[0]}
		addr, port, err := serverAddress(args[1])
		if err != nil {
			t.fail(l, "%v", err)
			return
		}
		s.addr, s.port = addr, port
		var o serverOpts
		if !c.serverOptions(l, args[2:], &o) {
			return
		}
		s.opts = o
		b.servers = append(b.servers, s)
		t.ok(l)
	case "default-server":
		var o serverOpts
		if c.serverOptions(l, args, &o) {
			b.defServer = o.over(b.defServer)
			t.ok(l)
		}
	case "use-server":
		if len(args) < 3 {
			t.fail(l, "use-server wants a server and a condition, e.g. use-server app1 if { hdr(host) -i a.example }")
			return
		}
		hosts, ok := c.hostRule(l, args[1:], "pins a server", "pin:")
		if !ok {
			return
		}
		for _, h := range hosts {
			b.pins = append(b.pins, pin{host: h, server: args[0], l: l})
		}
	case "balance":
		if len(args) == 0 {
			t.fail(l, "balance wants an algorithm")
			return
		}
		b.balance.put(args[0], l)
	case "cookie":
		if len(args) == 0 {
			t.fail(l, "cookie wants a name")
			return
		}
		b.cookie.put(args, l)
	case "retries":
		n, err := parseCount(strings.Join(args, " "), 0, 1000)
		if err != nil {
			t.fail(l, "%v", err)
			return
		}
		b.retries.put(n, l)
		t.ok(l)
	case "retry-on":
		t.skip(l, "tandem's rule: a request not sent (a failed connection) is always retried on the next server; one sent only when idempotent with its body buffered")
	case "http-check":
		c.httpCheck(l, args)
	case "hash-type":
		t.skip(l, "tandem balances round robin, with sticky.cookie for affinity: no hashing")
	case "http-reuse":
		t.skip(l, "tandem keeps a small pool of idle connections per server and reuses them")
	case "fullconn":
		t.skip(l, "tandem does not queue requests per server")
	case "stick-table", "stick", "persist":
		t.skip(l, "tandem's only affinity is sticky.cookie, in round-robin groups")
	default:
		t.skip(l, "tandem has no such backend setting")
	}
}

// serverAddress reads a server's host:port.
func serverAddress(a string) (string, int, error) {
	host, port, ok := tcpAddress(a)
	switch {
	case !ok && !strings.Contains(a, ":"):
		return "", 0, fmt.Errorf("%q has no port: HAProxy would use the client's destination port; tandem needs host:port", a)
	case !ok:
		return "", 0, fmt.Errorf("%q: tandem reaches servers over TCP, host:port", a)
	case strings.HasPrefix(port, "+") || strings.HasPrefix(port, "-"):
		return "", 0, fmt.Errorf("%q: a port relative to the client's is not translated; give the port", a)
	}
	n, err := parseCount(port, 1, 65535)
	if err != nil || host == "" || host == "*" {
		return "", 0, fmt.Errorf("%q: want host:port", a)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), n, nil
}

func (c *ctx) httpCheck(l *Line, args []string) {
	t := c.tr.t
	b := c.b
	if len(args) == 0 {
		t.fail(l, "http-check wants expect, send...")
		return
	}
	switch args[0] {
	case "expect":
		rest := args[1:]
		for len(rest) >= 2 {
			switch rest[0] {
			case "min-recv", "comment", "ok-status", "error-status", "tout-status", "on-success", "on-error", "status-code":
				rest = rest[2:]
				continue
			}
			break
		}
		if len(rest) > 0 && rest[0] == "!" {
			t.skip(l, "a negated expectation: tandem expects a status and a body substring or regular expression")
			return
		}
		if len(rest) != 2 {
			t.fail(l, "http-check expect wants a match and a pattern, e.g. http-check expect string version")
			return
		}
		switch rest[0] {
		case "status":
			var set config.StatusSet
			for _, s := range strings.Split(rest[1], ",") {
				r, err := config.ParseStatus(s)
				if err != nil {
					t.fail(l, "%v", err)
					return
				}
				set = append(set, r)
			}
			b.expStatus.put(set, l)
			t.ok(l)
		case "string":
			b.expBody.put(rest[1], l)
			t.ok(l)
		case "rstring":
			if err := config.BodyRegexp(rest[1]); err != nil {
				t.skip(l, "regular expression %q is not one Go's RE2 reads (%v): write it as health.expect.bodyRegexp", rest[1], err)
				return
			}
			b.expRegexp.put(rest[1], l)
			t.ok(l)
		case "rstatus":
			t.skip(l, "tandem expects status codes and ranges (health.expect.status), not a regular expression; its default is 2xx")
		default:
			t.skip(l, "tandem expects a status and a body substring or regular expression, not %s", rest[0])
		}
	case "send":
		rest := args[1:]
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case "meth":
				if i+1 < len(rest) {
					if !c.checkMethod(l, rest[i+1]) {
						return
					}
					i++
				}
			case "uri":
				if i+1 < len(rest) {
					if !c.checkPath(l, rest[i+1]) {
						return
					}
					i++
				}
			case "ver":
				i++
			case "hdr":
				if i+2 < len(rest) && strings.EqualFold(rest[i+1], "host") {
					b.chkHost.put(rest[i+2], l)
				} else if i+2 < len(rest) {
					t.skip(l, "check header %s: tandem's check sends Host (health.host) and X-Tandem-Role only", rest[i+1])
				}
				i += 2
			default:
				t.skip(l, "%s: tandem's check is a request without a body", rest[i])
				i++
			}
		}
		t.ok(l)
	case "disable-on-404":
		t.skip(l, "take a server out of service with `tandem drain GROUP SERVER`")
	case "send-state":
		t.skip(l, "tandem tells each failover server its role in X-Tandem-Role on every check instead")
	default:
		t.skip(l, "tandem's check is one request and one expectation")
	}
}

// checkMethod sets the method of the backend's check, in capitals, if
// tandem's check can send it; an error on l if not.
func (c *ctx) checkMethod(l *Line, m string) bool {
	m = strings.ToUpper(m)
	if err := config.HTTPMethod(m); err != nil {
		c.tr.t.fail(l, "%v: tandem's check sends health.method as its method", err)
		return false
	}
	c.b.chkMethod.put(m, l)
	return true
}

// checkPath sets the path of the backend's check if tandem's check can
// ask for it; an error on l if not.
func (c *ctx) checkPath(l *Line, p string) bool {
	if err := config.AbsPath(p); err != nil {
		c.tr.t.fail(l, "%v: tandem's check asks for health.path, a path", err)
		return false
	}
	c.b.chkPath.put(p, l)
	return true
}
