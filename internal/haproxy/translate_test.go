package haproxy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// sample is the backend of issue 10, as operators bring it (the e2e
// test imports the same file).
var sample = func() string {
	b, err := os.ReadFile("testdata/sense.cfg")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// combinedPEM writes a certificate chain and its key in one file, as
// HAProxy's crt takes them, and a certificate without its key.
func combinedPEM(t *testing.T) (combined, keyless string) {
	t.Helper()
	c := testcert.New(t)
	dir := t.TempDir()
	combined, keyless = filepath.Join(dir, "site.pem"), filepath.Join(dir, "nokey.pem")
	if err := os.WriteFile(combined, append(append([]byte{}, c.CertPEM...), c.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyless, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return combined, keyless
}

type importCase struct {
	name string
	src  string
	opt  Options
	// notes: one substring per note expected, in line order; every note
	// must be matched.
	notes []string
	// fails: the file cannot be translated.
	fails bool
	check func(t *testing.T, cfg *config.Config)
}

func runImport(t *testing.T, tc importCase) {
	t.Helper()
	res, err := Translate("t.cfg", []byte(tc.src), tc.opt)
	var got []string
	for _, n := range res.Notes {
		got = append(got, n.String())
	}
	if len(got) != len(tc.notes) {
		t.Errorf("%d notes, want %d:\n%s", len(got), len(tc.notes), strings.Join(got, "\n"))
	} else {
		for i, w := range tc.notes {
			if !strings.Contains(got[i], w) {
				t.Errorf("note %d:\n%s\nwant it to contain:\n%s", i, got[i], w)
			}
		}
	}
	if tc.fails {
		if !errors.Is(err, ErrUntranslatable) || res.YAML != nil {
			t.Fatalf("error %v and %d bytes of YAML, want ErrUntranslatable and none", err, len(res.YAML))
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("imported.yaml", res.YAML)
	if err != nil {
		t.Fatalf("the result does not parse: %v\n%s", err, res.YAML)
	}
	if tc.check != nil {
		tc.check(t, cfg)
	}
	if t.Failed() {
		t.Logf("YAML:\n%s", res.YAML)
	}
}

func group(t *testing.T, cfg *config.Config, name string) *config.Group {
	t.Helper()
	for i := range cfg.Groups {
		if cfg.Groups[i].Name == name {
			return &cfg.Groups[i]
		}
	}
	t.Fatalf("no group %s", name)
	return nil
}

func TestTranslateSample(t *testing.T) {
	crt, _ := combinedPEM(t)
	runImport(t, importCase{
		src: sample,
		opt: Options{HTTP: ":8080", HTTPS: ":8443", Crt: crt},
		notes: []string{
			"t.cfg:14: warning: server sen2: inter 40000 (40s): kept as written, but with no traffic tandem's checks notice a dead master only after up to 41.25s",
		},
		check: func(t *testing.T, cfg *config.Config) {
			if len(cfg.Listeners) != 2 {
				t.Fatalf("listeners %+v", cfg.Listeners)
			}
			http, https := cfg.Listeners[0], cfg.Listeners[1]
			if http.Address != ":8080" || !http.RedirectHTTPS || http.HTTPSPort != 443 || http.TLS != nil {
				t.Errorf("plain listener %+v: want :8080 redirecting to https on 443 (HAProxy keeps the Host)", http)
			}
			if https.Address != ":8443" || https.TLS == nil || https.TLS.Cert != crt || https.TLS.Key != crt ||
				https.HSTS == nil || https.HSTS.MaxAge != 16000000 || !https.HSTS.Preload || https.HSTS.IncludeSubDomains {
				t.Errorf("TLS listener %+v %+v %+v: want the crt as cert and key, HSTS max-age 16000000 with preload", https, https.TLS, https.HSTS)
			}
			g := group(t, cfg, "10_sense")
			if g.Mode != config.ModeFailover || len(g.Hosts) != 0 || len(g.Servers) != 2 ||
				g.Servers[0] != (config.Server{Name: "sen1", Address: "react1.domain.com:8079", Backup: true}) ||
				g.Servers[1] != (config.Server{Name: "sen2", Address: "react2.domain.com:8079"}) {
				t.Errorf("group %+v: want failover over sen2, sen1 the backup, for every host", g)
			}
			if !slices.Equal(g.Pin, []config.Pin{{Host: "master.domain.com", Server: "sen2"}, {Host: "failover.domain.com", Server: "sen1"}}) {
				t.Errorf("pins %+v", g.Pin)
			}
			h := g.Health
			if h.Method != "GET" || h.Path != "/status" || h.Expect.Body != "version" || h.Interval.D() != 40*time.Second || h.Port != 0 || h.Disabled {
				t.Errorf("health %+v: want GET /status expecting version every 40s on the traffic port", h)
			}
			if !slices.Equal(g.Websocket.Paths, []string{"/websocket"}) || !g.Websocket.RequireUpgrade {
				t.Errorf("websocket %+v: want the guard on /websocket", g.Websocket)
			}
		},
	})
}

func TestTranslate(t *testing.T) {
	crt, keyless := combinedPEM(t)
	for _, tc := range []importCase{
		{
			name:  "a backend alone says nothing of where to listen",
			src:   sample,
			fails: true,
			notes: []string{
				"t.cfg: error: no frontend or listen section binds an address: nothing would listen. Add a frontend (bind, default_backend), or give --http ADDR and/or --https ADDR --crt FILE",
				"t.cfg:14: warning: server sen2: inter 40000 (40s)",
			},
		},
		{
			name: "defaults: inherited, overridden, and replaced by the next defaults section",
			src: `defaults
    mode http
    timeout connect 4s
    timeout server 30s
    timeout client 20s
    retries 2
    option httpchk GET /health
    default-server inter 500ms fall 4
frontend fe
    bind 127.0.0.1:8080
    use_backend a if { hdr(host) -i a.example }
    default_backend b
backend a
    timeout server 45s
    server a1 127.0.0.1:9001 check
    server a2 127.0.0.1:9002 check backup
defaults
    mode http
backend b
    server b1 127.0.0.1:9003
`,
			notes: []string{
				"t.cfg:19: warning: backend b: no server has check: HAProxy never checks them, nor does tandem (health.disabled: true)",
			},
			check: func(t *testing.T, cfg *config.Config) {
				a := group(t, cfg, "a")
				if a.Timeouts.Connect.D() != 4*time.Second || a.Timeouts.Response.D() != 45*time.Second || a.Retry.Attempts != 3 ||
					a.Health.Path != "/health" || a.Health.Interval.D() != 500*time.Millisecond || a.Health.Fall != 4 || !slices.Equal(a.Hosts, []string{"a.example"}) {
					t.Errorf("group a %+v: want the first defaults' settings, its own timeout server", a)
				}
				b := group(t, cfg, "b")
				if b.Timeouts.Connect.D() != 2*time.Second || b.Retry.Attempts != 3 || !b.Health.Disabled || len(b.Hosts) != 0 {
					t.Errorf("group b %+v: want tandem's defaults (a later defaults section replaces the earlier), every other host", b)
				}
				if cfg.Limits.ReadHeaderTimeout.D() != 20*time.Second || cfg.Limits.IdleTimeout.D() != 20*time.Second {
					t.Errorf("limits %+v: want timeout client as HAProxy's fallback for both", cfg.Limits)
				}
			},
		},
		{
			name: "named defaults with from, a listen section",
			src: `defaults web
    mode http
    timeout connect 1s
defaults other
    mode http
    timeout connect 9s
listen app from web
    bind :8081
    balance roundrobin
    cookie SRV insert indirect nocache
    server w1 127.0.0.1:9001 check cookie w1
    server w2 127.0.0.1:9002 check cookie w2
`,
			notes: []string{
				"t.cfg:5: not translated: mode: no section translated here takes this setting from this defaults section",
				"t.cfg:6: not translated: timeout connect: no section translated here takes this setting from this defaults section",
				"t.cfg:11: warning: server w1: no option httpchk: HAProxy only checked that the port accepts connections",
			},
			check: func(t *testing.T, cfg *config.Config) {
				g := group(t, cfg, "app")
				if g.Mode != config.ModeRoundRobin || g.Sticky == nil || g.Sticky.Cookie != "SRV" || g.Timeouts.Connect.D() != time.Second {
					t.Errorf("group %+v: want round robin with sticky SRV and web's connect timeout", g)
				}
				if len(cfg.Listeners) != 1 || cfg.Listeners[0].Name != "app" || cfg.Listeners[0].Address != ":8081" {
					t.Errorf("listeners %+v", cfg.Listeners)
				}
			},
		},
		{
			name: "an address bound twice in one section is listened on once; IPv6 in brackets; ports in decimal",
			src: `listen app
    mode http
    bind :8081
    bind *:8081,:8082
    bind [::1]:8083 ]:8084
    bind :08082
    server w1 127.0.0.1:9001
    server w2 [::1]:09002
`,
			notes: []string{
				"t.cfg:1: warning: listen app: no server has check",
				`t.cfg:4: warning: bind *:8081,:8082: address "*:8081" is bound already at line 3: tandem listens on it once`,
				`t.cfg:5: not translated: bind [::1]:8083: bind options not translated: ]:8084`,
				`t.cfg:6: warning: bind :08082: address ":08082" is bound already at line 4: tandem listens on it once`,
			},
			check: func(t *testing.T, cfg *config.Config) {
				var addrs []string
				for _, l := range cfg.Listeners {
					addrs = append(addrs, l.Address)
				}
				if !slices.Equal(addrs, []string{":8081", ":8082", "[::1]:8083"}) {
					t.Errorf("listeners on %v: want :8081 once, :8082 and [::1]:8083", addrs)
				}
				if a := group(t, cfg, "app").Servers[1].Address; a != "[::1]:9002" {
					t.Errorf("server w2 at %q: want [::1]:9002", a)
				}
			},
		},
		{
			name: "a Host test of no host name is not translated",
			src: `listen app
    mode http
    bind :8081
    use-server w2 if { hdr(host) -i 00! }
    use-server w1 if { hdr(host) -i *.example.com }
    server w1 127.0.0.1:9001
    server w2 127.0.0.1:9002
`,
			notes: []string{
				"t.cfg:1: warning: listen app: no server has check",
				`t.cfg:4: not translated: use-server w2: tandem pins a server by host name (pin:): "00!" is not an exact host name (no port, no wildcard)`,
				`t.cfg:5: not translated: use-server w1: tandem pins a server by host name (pin:): "*.example.com" is not an exact host name`,
			},
			check: func(t *testing.T, cfg *config.Config) {
				if p := group(t, cfg, "app").Pin; len(p) != 0 {
					t.Errorf("pins %+v: want none", p)
				}
			},
		},
		{
			name: "a cookie name tandem cannot send is not translated; a quoted name is kept whole",
			src: `frontend fe
    mode http
    bind :80
    use_backend a if { hdr(host) -i a.example }
    use_backend b if { hdr(host) -i b.example }
    default_backend c
backend a
    mode http
    cookie ( insert
    server a1 10.0.0.1:80
    server a2 10.0.0.2:80
backend b
    mode http
    cookie "" insert
    server b1 10.0.0.3:80
    server b2 10.0.0.4:80
backend c
    mode http
    cookie "S p" insert
    server c1 10.0.0.5:80
    server c2 10.0.0.6:80
`,
			notes: []string{
				"t.cfg:7: warning: backend a: no server has check",
				`t.cfg:9: not translated: cookie (: "(" is not a valid cookie name: tandem sends sticky.cookie as a Set-Cookie name, a token`,
				"t.cfg:12: warning: backend b: no server has check",
				`t.cfg:14: not translated: cookie : "" is not a valid cookie name`,
				"t.cfg:17: warning: backend c: no server has check",
				`t.cfg:19: not translated: cookie S p: "S p" is not a valid cookie name`,
			},
			check: func(t *testing.T, cfg *config.Config) {
				for _, name := range []string{"a", "b", "c"} {
					if g := group(t, cfg, name); g.Sticky != nil {
						t.Errorf("group %s: sticky %+v, want none", name, g.Sticky)
					}
				}
			},
		},
		{
			name: "a websocket guard of a path that does not start with / is not translated",
			src: `listen app
    mode http
    bind :8081
    acl ws path_beg ws
    acl up hdr(upgrade) -i websocket
    acl co hdr(connection) -i upgrade
    http-request deny if ws !up || ws !co
    server w1 127.0.0.1:9001
`,
			notes: []string{
				"t.cfg:1: warning: listen app: no server has check",
				"t.cfg:4: not translated: acl ws: ACL ws is used only by line(s) 7, not translated",
				"t.cfg:5: not translated: acl up: ACL up is used only by line(s) 7, not translated",
				"t.cfg:6: not translated: acl co: ACL co is used only by line(s) 7, not translated",
				`t.cfg:7: not translated: http-request deny: a websocket guard of a path tandem cannot guard (websocket.paths: "ws" must start with /): the requests it refused will be served`,
			},
			check: func(t *testing.T, cfg *config.Config) {
				if w := group(t, cfg, "app").Websocket; len(w.Paths) != 0 || w.RequireUpgrade {
					t.Errorf("websocket %+v: want no guard", w)
				}
			},
		},
		{
			name: "check statuses are read in decimal, leading zeros too",
			src: `listen app
    mode http
    bind :8081
    option httpchk GET /health
    http-check expect status 0100,0200-0299
    server w1 127.0.0.1:9001 check
`,
			check: func(t *testing.T, cfg *config.Config) {
				if s := group(t, cfg, "app").Health.Expect.Status; !slices.Equal(s, config.StatusSet{{Lo: 100, Hi: 100}, {Lo: 200, Hi: 299}}) {
					t.Errorf("expect.status %v: want 100 and 200-299", s)
				}
			},
		},
		{
			name: "an empty Strict-Transport-Security value is not translated",
			src: `listen app
    mode http
    bind :8443 ssl crt ` + crt + `
    http-response set-header Strict-Transport-Security ""
    server w1 127.0.0.1:9001
`,
			notes: []string{
				"t.cfg:1: warning: listen app: no server has check",
				`t.cfg:4: not translated: http-response set-header: Strict-Transport-Security "", which browsers ignore: tandem's hsts.maxAge is required (seconds)`,
			},
			check: func(t *testing.T, cfg *config.Config) {
				if h := cfg.Listeners[0].HSTS; h != nil {
					t.Errorf("hsts %+v: want none", h)
				}
			},
		},
		{
			name: "frontend with TLS, redirect, HSTS, host routing; crt-base",
			src: `global
    crt-base ` + filepath.Dir(crt) + `
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode http
frontend www
    bind :80
    bind :443 ssl crt site.pem alpn h2,http/1.1
    http-request redirect scheme https unless { ssl_fc }
    http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    acl host_api hdr(host) -i api.example.com
    use_backend api if host_api
    default_backend web
backend api
    option httpchk
    http-check expect status 200,204
    server a1 10.0.0.1:80 check
backend web
    option httpchk GET /status
    http-check expect rstring ^ok
    server w1 10.0.0.2:80 check inter 2s fall 3
    server w2 10.0.0.3:80 check backup
`,
			notes: []string{
				"t.cfg:9: warning: http-request redirect: tandem redirects with 301 Moved Permanently (browsers remember it); HAProxy answered 302 here",
			},
			check: func(t *testing.T, cfg *config.Config) {
				l80, l443 := cfg.Listeners[0], cfg.Listeners[1]
				if l80.Name != "www-80" || !l80.RedirectHTTPS || l80.HTTPSPort != 0 || l443.Name != "www-443" || l443.TLS.Cert != crt ||
					l443.TLS.MinVersion != "1.3" || l443.HSTS.MaxAge != 31536000 || !l443.HSTS.IncludeSubDomains {
					t.Errorf("listeners %+v %+v %+v", l80, l443.TLS, l443.HSTS)
				}
				api := group(t, cfg, "api")
				if !slices.Equal(api.Hosts, []string{"api.example.com"}) || api.Health.Method != "OPTIONS" || api.Health.Path != "/" ||
					len(api.Health.Expect.Status) != 2 || api.Health.Expect.Status[1] != (config.StatusRange{Lo: 204, Hi: 204}) {
					t.Errorf("group api %+v", api)
				}
				web := group(t, cfg, "web")
				if len(web.Hosts) != 0 || web.Health.Expect.BodyRegexp != "^ok" || web.Mode != config.ModeFailover {
					t.Errorf("group web %+v", web)
				}
			},
		},
		{
			name: "what is not translated is listed with its line",
			src: `global
    daemon
    log /dev/log local0
    maxconn 5000
defaults
    mode http
    timeout tunnel 1h
    option http-server-close
frontend fe
    bind :80 accept-proxy-not defer-accept
    compression algo gzip
    http-request deny if { path_beg /admin }
    use_backend be if { path_beg /x }
    default_backend be
backend be
    balance source
    stick-table type ip size 1m
    server s1 10.0.0.1:80 check weight 5 slowstart 10s
    server s2 10.0.0.2:80 check weight 1 disabled
    server s3 10.0.0.3:80 check
    frobnicate now
resolvers dns
    nameserver a 10.0.0.53:53
`,
			notes: []string{
				"t.cfg:2: not translated: daemon: a setting of HAProxy's process",
				"t.cfg:3: not translated: log: tandem logs to stderr",
				"t.cfg:4: not translated: maxconn: a bound on the whole process",
				"t.cfg:7: not translated: timeout tunnel: tandem puts no idle bound on an upgraded connection",
				"t.cfg:8: not translated: option http-server-close: tandem keeps client and server connections alive",
				"t.cfg:10: not translated: bind :80: bind options not translated: accept-proxy-not, defer-accept",
				"t.cfg:11: not translated: compression: tandem passes bodies through",
				"t.cfg:12: not translated: http-request deny: tandem's only deny rule is its websocket guard",
				"t.cfg:13: not translated: use_backend be: tandem routes to a group by Host only",
				"t.cfg:16: not translated: balance: tandem balances round robin (sticky.cookie keeps a client on its server): source is not translated",
				"t.cfg:17: not translated: stick-table: tandem's only affinity is sticky.cookie",
				"t.cfg:18: not translated: server s1: server options not translated: slowstart 10s (a server back up takes its full share at once)",
				"t.cfg:18: warning: server s1: no option httpchk",
				"t.cfg:19: not translated: server s2: server s2 starts disabled (in maintenance) in HAProxy: left out",
				"t.cfg:21: not translated: frobnicate: tandem import does not know this directive",
				"t.cfg:22: not translated: resolvers: tandem has nothing for a resolvers section",
				"t.cfg:23: not translated: nameserver: in the resolvers section left out",
			},
			check: func(t *testing.T, cfg *config.Config) {
				g := group(t, cfg, "be")
				if len(g.Servers) != 2 || g.Mode != config.ModeRoundRobin {
					t.Errorf("group %+v: want s1 and s3 round robin", g)
				}
			},
		},
		{
			name: "dangerous values are kept and said",
			src: `defaults
    mode http
frontend fe
    bind :80
    default_backend be
backend be
    retries 0
    timeout check 5s
    server m 10.0.0.1:80 check inter 3s fall 5
    server f 10.0.0.2:80 check inter 3s fall 5 backup
`,
			notes: []string{
				"t.cfg:7: warning: retries: retries 0: no retry, so a request to a server that just died fails instead of going to the next one",
				"t.cfg:8: warning: timeout check: timeout check 5s is longer than the check interval 3s, which tandem refuses: the interval bounds it instead",
				"t.cfg:9: warning: server m: no option httpchk",
				"t.cfg:9: warning: server m: inter 3s (3s): kept as written, but with no traffic tandem's checks notice a dead master only after up to 19s (interval + timeout + (fall − 1) × (fastInterval + timeout), with fall 5, fastInterval 250ms, timeout 3s), and HAProxy after up to 15s (fall 5 × inter 3s)",
			},
			check: func(t *testing.T, cfg *config.Config) {
				g := group(t, cfg, "be")
				if g.Retry.Attempts != 1 || g.Health.Interval.D() != 3*time.Second || g.Health.Timeout.D() != 3*time.Second || g.Health.Fall != 5 {
					t.Errorf("group %+v", g)
				}
			},
		},
		{
			name: "values beyond tandem's bounds are brought within them, and said",
			src: `listen app
    mode http
    bind :8081
    option httpchk GET /health
    retries 20
    server w1 127.0.0.1:9001 check inter 5 fastinter 1us
`,
			notes: []string{
				"t.cfg:5: warning: retries: retries 20: tandem makes at most 10 tries (retry.attempts: 10)",
				"t.cfg:6: warning: server w1: inter 5ms is below tandem's minimum: 10ms",
				"t.cfg:6: warning: server w1: fastinter 1µs is below tandem's minimum: 10ms",
			},
			check: func(t *testing.T, cfg *config.Config) {
				if g := group(t, cfg, "app"); g.Retry.Attempts != config.MaxAttempts || g.Health.Interval.D() != config.MinInterval || g.Health.FastInterval.D() != config.MinInterval {
					t.Errorf("retry %+v, health %+v: want 10 tries, checks every 10ms", g.Retry, g.Health)
				}
			},
		},
		{
			name: "cookie in a failover group, mixed redirects and HSTS",
			src: `defaults
    mode http
frontend fe
    bind :80
    bind :443 ssl crt ` + crt + `
    use_backend a if { hdr(host) -i a.example }
    default_backend b
backend a
    cookie SRV insert
    redirect scheme https code 301 if !{ ssl_fc }
    http-response set-header Strict-Transport-Security max-age=600
    server a1 10.0.0.1:80
    server a2 10.0.0.2:80 backup
backend b
    server b1 10.0.0.3:80
`,
			notes: []string{
				"t.cfg:8: warning: backend a: no server has check",
				"t.cfg:9: not translated: cookie SRV: a failover group sends every request to its active server",
				"t.cfg:10: not translated: redirect: tandem redirects a whole listener to HTTPS: frontend fe's plain listener also serves b, which does not redirect",
				"t.cfg:11: warning: http-response set-header: tandem sends HSTS on every response of a listener: b, served by the same listener, gets it too",
				"t.cfg:14: warning: backend b: no server has check",
			},
			check: func(t *testing.T, cfg *config.Config) {
				if cfg.Listeners[0].RedirectHTTPS || cfg.Listeners[1].HSTS == nil || cfg.Listeners[1].HSTS.MaxAge != 600 {
					t.Errorf("listeners %+v %+v", cfg.Listeners[0], cfg.Listeners[1])
				}
			},
		},
		{
			name: "environment variables are expanded and said",
			src: `frontend fe
    mode http
    bind "${ADDR}"
    default_backend be
backend be
    mode http
    server s "$SERVER" check
`,
			opt: Options{Getenv: func(n string) (string, bool) {
				v, ok := map[string]string{"ADDR": "127.0.0.1:8080"}[n]
				return v, ok
			}},
			fails: true,
			notes: []string{
				"t.cfg: error: no backend is translated and reached by a frontend: tandem would have no group to send to",
				`t.cfg:3: warning: bind 127.0.0.1:8080: $ADDR expanded from the environment of tandem import, to "127.0.0.1:8080"`,
				"t.cfg:5: error: backend be: backend be has no server tandem can send to",
				"t.cfg:7: warning: server s: $SERVER is not set in the environment of tandem import: expanded to nothing",
				"t.cfg:7: error: server s: \"\" has no port",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) { runImport(t, tc) })
	}
	_ = keyless
}

// TestTranslateFileName: the file's name, in the YAML's comments, is
// quoted when a comment cannot hold it as it is.
func TestTranslateFileName(t *testing.T) {
	src := "listen app\n    mode http\n    bind :8081\n    server w1 127.0.0.1:9001 check\n"
	for _, file := range []string{"a\nb.cfg", "caf\xe9.cfg"} {
		res, err := Translate(file, []byte(src), Options{})
		if err != nil {
			t.Fatalf("%q: %v", file, err)
		}
		if _, err := config.Parse("imported", res.YAML); err != nil {
			t.Errorf("%q: the result does not parse: %v\n%s", file, err, res.YAML)
		}
		if q := strconv.Quote(file); !strings.Contains(string(res.YAML), "# "+q+":4") {
			t.Errorf("%q: want comments naming %s:4\n%s", file, q, res.YAML)
		}
	}
}

// FuzzTranslate: any file gives notes with lines, never a panic, and a
// result the config package accepts whenever there is one.
func FuzzTranslate(f *testing.F) {
	f.Add(sample, ":8080")
	f.Add("frontend fe\n mode http\n bind :80\n use_backend b if { hdr(host) -i a }\n default_backend b\nbackend b\n mode http\n balance roundrobin\n cookie S insert\n server a 1.2.3.4:80 check inter 1s\n server c 1.2.3.5:80 check\n", "")
	f.Add("defaults\n mode http\n timeout server 1s\nlisten l\n bind :1\n redirect scheme https\n server a b:1 check port 2 backup\n server b c:2\n", "")
	// Every value the import writes, for the fuzzer to start from.
	f.Add("global\n hard-stop-after 5s\nfrontend fe\n mode http\n bind :80\n bind :443 ssl crt /x.pem\n maxconn 10\n timeout client 5s\n option httplog\n"+
		" redirect scheme https if !{ ssl_fc }\n http-response set-header Strict-Transport-Security max-age=1\n acl ws path_beg /ws\n acl up hdr(upgrade) -i websocket\n"+
		" acl co hdr(connection) -i upgrade\n http-request deny if ws !up || ws !co\n use_backend b if { hdr(host) -i a.example }\n default_backend c\n"+
		"backend b\n mode http\n option httpchk GET /h\n http-check expect status 200-299\n http-check expect rstring ^ok\n http-check send meth HEAD uri /x hdr Host h\n"+
		" timeout check 1s\n timeout connect 1s\n retries 2\n use-server a if { hdr(host) -i p.example }\n server a 1.2.3.4:80 check inter 1s fall 2 rise 2 port 81 observe layer7 error-limit 5\n"+
		" server c 1.2.3.5:80 check backup\nbackend c\n mode http\n balance roundrobin\n cookie S insert\n http-check expect string ok\n server d d:1 check\n server e e:1\n", "")
	f.Fuzz(func(t *testing.T, src, http string) {
		res, err := Translate("f.cfg", []byte(src), Options{HTTP: http, Getenv: func(string) (string, bool) { return "", false }})
		for _, n := range res.Notes {
			if n.Line < 0 || n.Msg == "" || strings.Contains(n.Msg, "a bug of tandem import") {
				t.Fatalf("note %+v\nsource:\n%s", n, src)
			}
		}
		if err != nil {
			return
		}
		if _, err := config.Parse("imported", res.YAML); err != nil {
			t.Fatalf("the result is refused: %v\n%s", err, res.YAML)
		}
	})
}
