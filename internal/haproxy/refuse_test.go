package haproxy

import (
	"errors"
	"strings"
	"testing"
)

// TestTranslateRefuses: a file that cannot become a working config gives
// no YAML, and says where and why, file:line first.
func TestTranslateRefuses(t *testing.T) {
	crt, keyless := combinedPEM(t)
	const fe = "frontend fe\n    mode http\n    bind :80\n    default_backend be\n"
	const be = "backend be\n    mode http\n    server s1 10.0.0.1:80 check\n"
	for _, tc := range []struct {
		name, src string
		opt       Options
		want      string
	}{
		{"empty file", "# nothing\n", Options{}, "t.cfg: error: the file holds no directive"},
		{"directive before any section", "mode http\n" + fe + be, Options{}, `t.cfg:1: error: mode: "mode" stands before any section`},
		{"quote not closed", fe + be + "    http-response set-header X \"a\n", Options{}, `t.cfg:8: error: the " quote is not closed on this line`},
		{"conditional block", fe + ".if defined(X)\n" + be + ".endif\n", Options{}, "t.cfg:5: error: .if: conditional blocks and messages"},
		{"no such backend", strings.Replace(fe, "default_backend be", "default_backend nope", 1) + be, Options{}, `t.cfg:4: error: default_backend: no backend named "nope"`},
		{"server without port", fe + "backend be\n    mode http\n    server s1 10.0.0.1\n", Options{}, `t.cfg:7: error: server s1: "10.0.0.1" has no port`},
		{"bad time", fe + be + "    timeout connect 5x\n", Options{}, `t.cfg:8: error: timeout connect: "5x" is not a time`},
		{"a time that overflows", fe + be + "    timeout connect 200000d\n", Options{}, `t.cfg:8: error: timeout connect: "200000d" is longer than HAProxy's longest time, 2147483647ms (about 24.8 days)`},
		{"a time longer than HAProxy's", fe + be + "    timeout server 2147483648\n", Options{}, `t.cfg:8: error: timeout server: "2147483648" is longer than HAProxy's longest time`},
		{"bad count", fe + be + "    retries many\n", Options{}, `t.cfg:8: error: retries: "many": want a whole number`},
		{"use-server of no server", fe + be + "    use-server s9 if { hdr(host) -i a.example }\n", Options{}, "t.cfg:8: error: use-server s9: use-server s9: no server of that name in backend be"},
		{"undefined ACL", fe + be + "    use-server s1 if is_a\n", Options{}, `t.cfg:8: error: use-server s1: no ACL named "is_a" is defined in this section`},
		{"a check method tandem cannot send", fe + be + "    option httpchk ( /\n", Options{}, `t.cfg:8: error: option httpchk: "(" is not an HTTP method: tandem's check sends health.method as its method`},
		{"a check of no path", fe + be + "    option httpchk GET status\n", Options{}, `t.cfg:8: error: option httpchk: "status" must start with /: tandem's check asks for health.path, a path`},
		{"http-check send of no method", fe + be + "    http-check send meth \"\" uri /x\n", Options{}, `t.cfg:8: error: http-check send: "" is not an HTTP method`},
		{"http-check send of no path", fe + be + "    http-check send uri *\n", Options{}, `t.cfg:8: error: http-check send: "*" must start with /`},
		{"a check status out of range", fe + be + "    http-check expect status 200,2000\n", Options{}, `t.cfg:8: error: http-check expect: status "2000" is out of range 100-599`},
		{"ssl without crt", strings.Replace(fe, "bind :80", "bind :443 ssl", 1) + be, Options{}, "t.cfg:3: error: bind :443: ssl without crt"},
		{"crt-list", strings.Replace(fe, "bind :80", "bind :443 ssl crt-list /etc/list.txt", 1) + be, Options{}, "t.cfg:3: error: bind :443: crt-list /etc/list.txt: tandem takes one certificate per listener"},
		{"PROXY protocol", strings.Replace(fe, "bind :80", "bind :80 accept-proxy", 1) + be, Options{}, "t.cfg:3: error: bind :80: accept-proxy: tandem does not read the PROXY protocol"},
		{"client certificates", strings.Replace(fe, "bind :80", "bind :443 ssl crt "+crt+" verify required ca-file ca.pem", 1) + be, Options{}, "t.cfg:3: error: bind :443: verify required: tandem does not ask clients for certificates"},
		{"crt without its key", strings.Replace(fe, "bind :80", "bind :443 ssl crt "+keyless, 1) + be, Options{}, "t.cfg:3: error: bind :443: crt " + keyless + " holds no private key, and there is no " + keyless + ".key beside it"},
		{"TLS to the server", fe + "backend be\n    mode http\n    server s1 10.0.0.1:443 ssl verify none\n", Options{}, "t.cfg:7: error: server s1: ssl: tandem speaks plain HTTP to its servers"},
		{"every server a backup", fe + "backend be\n    mode http\n    server s1 10.0.0.1:80 backup\n", Options{}, "t.cfg:5: error: backend be: every server of backend be is a backup"},
		{"a host to two backends", "frontend fe\n    mode http\n    bind :80\n    use_backend be if { hdr(host) -i a.example }\n    use_backend be2 if { hdr(host) -i a.example }\n" +
			be + strings.Replace(be, "backend be", "backend be2", 1), Options{}, "t.cfg:5: error: use_backend be2: host a.example already goes to backend be (line 4)"},
		{"two catch-all backends", fe + "frontend fe2\n    mode http\n    bind :81\n    default_backend be2\n" + be + strings.Replace(be, "backend be", "backend be2", 1), Options{},
			"t.cfg:8: error: default_backend: every host no rule names goes to backend be2 here, but to be in frontend fe (line 4)"},
		{"only TCP", "frontend db\n    mode tcp\n    bind :5432\n    default_backend pg\nbackend pg\n    mode tcp\n    server p 10.0.0.1:5432\n", Options{},
			"t.cfg:1: not translated: frontend db: mode tcp (line 2): tandem proxies HTTP only"},
		{"an address bound by two frontends", fe + "frontend fe2\n    mode http\n    bind *:80\n    default_backend be\n" + be, Options{},
			"t.cfg:7: error: bind *:80: address :80 is bound by fe too (line 3): HAProxy shares its connections between the two at random"},
		{"the admin API's address", strings.Replace(fe, "bind :80", "bind 127.0.0.1:09901", 1) + be, Options{},
			"t.cfg:3: error: bind 127.0.0.1:09901: address 127.0.0.1:9901 is where tandem's admin API listens (admin.address): listen on another one"},
		{"--http on the admin API's address", be, Options{HTTP: "127.0.0.1:9901"}, "t.cfg: error: --http: address 127.0.0.1:9901 is where tandem's admin API listens"},
		{"a stray bracket", strings.Replace(fe, "bind :80", "bind ]:80", 1) + be, Options{}, `t.cfg:3: not translated: bind ]:80: address "]:80": tandem listens on host:port`},
		{"a stray bracket in a server", fe + "backend be\n    mode http\n    server s1 a]b:80\n", Options{}, `t.cfg:7: error: server s1: "a]b:80": tandem reaches servers over TCP, host:port`},
		{"a backend name tandem refuses", strings.Replace(fe, "default_backend be", "default_backend a:b", 1) + strings.Replace(be, "backend be", "backend a:b", 1), Options{},
			`t.cfg:5: error: backend a:b: "a:b": use letters, digits, '-', '_' and '.' (at most 63): a tandem group takes the section's name`},
		{"a server name tandem refuses", fe + "backend be\n    mode http\n    server s:1 10.0.0.1:80\n", Options{},
			`t.cfg:7: error: server s:1: "s:1": use letters, digits, '-', '_' and '.' (at most 63): a tandem server keeps the name of its server line`},
		{"a value that is not UTF-8", fe + "backend be\n    mode http\n    server s1 caf\\xe9:80\n", Options{},
			`t.cfg: error: groups[0].servers[0].address, from t.cfg:7: "caf\xe9:80" is not UTF-8, and a tandem config is UTF-8 text`},
		{"--http and --https on one address", be, Options{HTTP: ":8443", HTTPS: ":8443", Crt: crt}, "t.cfg: error: --http and --https name the same address :8443"},
		{"--https without --crt", be, Options{HTTPS: ":443"}, `t.cfg: error: --https ":443": want host:port or :port, and --crt FILE`},
		{"flags beside a frontend", fe + be, Options{HTTP: ":8080"}, "t.cfg: error: --http and --https stand in for a missing frontend, and this file has one"},
		{"flags and two backends", be + strings.Replace(be, "backend be", "backend be2", 1), Options{HTTP: ":8080"}, "t.cfg: error: --http and --https send every request to the file's one backend, and it has 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Translate("t.cfg", []byte(tc.src), tc.opt)
			if !errors.Is(err, ErrUntranslatable) || res.YAML != nil {
				t.Fatalf("error %v, %d bytes of YAML: want ErrUntranslatable and none", err, len(res.YAML))
			}
			var all []string
			found := false
			for _, n := range res.Notes {
				all = append(all, n.String())
				found = found || strings.HasPrefix(n.String(), tc.want)
			}
			if !found {
				t.Errorf("no note starts with\n%s\nnotes:\n%s", tc.want, strings.Join(all, "\n"))
			}
		})
	}
}
