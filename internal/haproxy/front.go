package haproxy

import (
	"net"
	"strconv"
	"strings"
)

// bind is one address a frontend listens on: a tandem listener.
type bind struct {
	l          *Line
	addr       string
	tls        bool
	crt        string
	minVersion string
	front      *front
	// Decided when the whole file is read.
	name      string
	redirect  bool
	httpsPort int
	hsts      string
	key       string
}

func (c *ctx) frontDirective(l *Line) {
	t := c.tr.t
	kw, args := l.Words[0], l.Words[1:]
	switch kw {
	case "bind":
		c.bind(l, args)
	case "default_backend":
		if len(args) != 1 {
			t.fail(l, "default_backend wants one backend name")
			return
		}
		c.f.defaultBackend.put(args[0], l)
	case "use_backend":
		if len(args) == 0 {
			t.fail(l, "use_backend wants a backend name")
			return
		}
		if strings.Contains(args[0], "%[") {
			t.skip(l, "a backend chosen at run time from a sample: tandem routes to a group by its hosts only")
			return
		}
		if len(args) == 1 {
			c.f.routes = append(c.f.routes, hostRoute{backend: args[0], l: l})
			return
		}
		hosts, ok := c.hostRule(l, args[1:], "routes to a group", "hosts:")
		if !ok {
			return
		}
		c.f.routes = append(c.f.routes, hostRoute{backend: args[0], hosts: hosts, l: l})
	case "monitor-uri":
		t.skip(l, "tandem answers /healthz and /readyz on its admin listener")
	case "capture":
		t.skip(l, "with log.access: true each request's line has its group, server, status and duration; no headers")
	default:
		t.skip(l, "tandem has no such frontend setting")
	}
}

// listenAddress turns a bind address into a listener's: "*:80" and
// ":80" listen on every address, ":::80" on every IPv6 one. The port is
// written in decimal, so that one address is one string (":080" is ":80").
func listenAddress(a string) (string, bool) {
	host, port, ok := tcpAddress(a)
	if !ok {
		return "", false
	}
	n, err := parseCount(port, 1, 65535)
	if err != nil {
		return "", false
	}
	if host == "*" {
		host = ""
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), true
}

func (c *ctx) bind(l *Line, args []string) {
	t := c.tr.t
	if len(args) == 0 {
		t.fail(l, "bind wants an address, e.g. bind :443 ssl crt /etc/haproxy/site.pem")
		return
	}
	b := bind{l: l, front: c.f, minVersion: c.tr.minTLS.v}
	var notTranslated []string
	var fatal string
	opts := args[1:]
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		arg := func() string {
			if i+1 < len(opts) {
				i++
				return opts[i]
			}
			return ""
		}
		switch o {
		case "ssl":
			b.tls = true
		case "crt":
			if p := arg(); b.crt == "" {
				b.crt = p
			} else {
				notTranslated = append(notTranslated, "crt "+p+" (tandem serves one certificate per listener: the first)")
			}
		case "crt-list":
			fatal = "crt-list " + arg() + ": tandem takes one certificate per listener (crt FILE)"
		case "alpn", "npn":
			arg() // tandem offers h2 and http/1.1 over TLS
		case "ssl-min-ver":
			v, rest := tlsBindOptions([]string{o, arg()})
			if v != "" {
				b.minVersion = v
			}
			notTranslated = append(notTranslated, rest...)
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "force-tlsv12", "no-tlsv12", "force-tlsv13":
			if v, _ := tlsBindOptions([]string{o}); v != "" {
				b.minVersion = v
			}
		case "accept-proxy", "accept-netscaler-cip":
			fatal = o + ": tandem does not read the PROXY protocol: what sends it would get 400 for every request"
		case "verify":
			if v := arg(); v != "none" {
				fatal = "verify " + v + ": tandem does not ask clients for certificates; the listener would admit clients this one refuses"
			}
		case "ca-file", "crl-file", "ciphers", "ciphersuites", "curves", "ecdhe", "sigalgs", "client-sigalgs", "name", "id",
			"process", "thread", "maxconn", "backlog", "nice", "interface", "mss", "namespace", "user", "group", "mode",
			"uid", "gid", "level", "severity-output", "tls-ticket-keys", "proto", "tcp-ut", "ca-sign-file", "ca-sign-pass", "ocsp-update", "guid-prefix":
			notTranslated = append(notTranslated, o+" "+arg())
		default:
			notTranslated = append(notTranslated, o)
		}
	}
	switch {
	case fatal != "":
		t.fail(l, "%s", fatal)
		return
	case b.tls && b.crt == "":
		t.fail(l, "ssl without crt: tandem needs the certificate (crt FILE, the chain and key in one PEM)")
		return
	case !b.tls && b.crt != "":
		t.fail(l, "crt without ssl: HAProxy would not use it either")
		return
	}
	if b.crt != "" && c.tr.crtBase != "" && !strings.HasPrefix(b.crt, "/") {
		b.crt = strings.TrimSuffix(c.tr.crtBase, "/") + "/" + b.crt
	}
	var ok int
	for _, a := range strings.Split(args[0], ",") {
		addr, good := listenAddress(a)
		if !good {
			t.skip(l, "address %q: tandem listens on host:port (TCP); no UNIX sockets, port ranges or fd@", a)
			continue
		}
		ok++
		if prev := c.f.bindOf(addr); prev != nil {
			// HAProxy binds the address twice (SO_REUSEPORT) and the kernel
			// shares connections between the two alike; one listener is the same.
			t.warn(l, "address %q is bound already at line %d: tandem listens on it once", a, prev.l.Num)
			continue
		}
		nb := b
		nb.addr = addr
		c.f.binds = append(c.f.binds, &nb)
	}
	if ok == 0 {
		return
	}
	t.ok(l)
	if len(notTranslated) > 0 {
		t.skip(l, "bind options not translated: %s", strings.Join(notTranslated, ", "))
	}
}
