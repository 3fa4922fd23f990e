package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/config"
)

// messages returns the Error() text of every Problem in err.
func messages(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, p := range config.Problems(err) {
		out = append(out, p.Error())
	}
	return out
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "empty file",
			yaml: "",
			want: []string{`t.yaml: file is empty`},
		},
		{
			name: "only comments",
			yaml: "# nothing here\n",
			want: []string{`t.yaml: file is empty`},
		},
		{
			name: "top level is a list",
			yaml: "- a\n- b\n",
			want: []string{`t.yaml:1: the top level must be a mapping (listeners:, groups:, ...)`},
		},
		{
			name: "unknown top-level key with suggestion",
			yaml: `listeners:
  - {name: web, address: ":8080"}
group:
  - name: app
`,
			// groups is then missing: it has no line to report.
			want: []string{
				`t.yaml: groups: at least one group is required`,
				`t.yaml:3: group: unknown field (did you mean "groups"?)`,
			},
		},
		{
			name: "unknown optional top-level key with suggestion",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limts: {drain: 5s}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: limts: unknown field (did you mean "limits"?)`},
		},
		{
			name: "unknown group key with suggestion",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    mdoe: roundrobin
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:5: groups[0].mdoe: unknown field (did you mean "mode"?)`},
		},
		{
			name: "unknown key without suggestion",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80", colour: blue}
`,
			want: []string{`t.yaml:6: groups[0].servers[0].colour: unknown field`},
		},
		{
			name: "unknown nested key with suggestion",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      intervall: 2s
`,
			want: []string{`t.yaml:8: groups[0].health.intervall: unknown field (did you mean "interval"?)`},
		},
		{
			name: "bad duration",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      interval: 1x
`,
			want: []string{`t.yaml:8: groups[0].health.interval: "1x" is not a duration (want e.g. 500ms, 2s, 1m)`},
		},
		{
			name: "bare number duration",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limits:
  drain: 10
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:4: limits.drain: "10" is not a duration (want e.g. 500ms, 2s, 1m)`},
		},
		{
			name: "negative duration",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limits: {idleTimeout: -5s}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: limits.idleTimeout: duration "-5s" is negative`},
		},
		{
			name: "duration given a list",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    timeouts: {connect: [1s]}
`,
			want: []string{`t.yaml:7: groups[0].timeouts.connect: want a duration such as 500ms or 2s`},
		},
		{
			name: "bad size unit",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    maxBodyBytes: 10 megabytes
`,
			want: []string{`t.yaml:7: groups[0].maxBodyBytes: "10 megabytes" is not a size (want e.g. 65536, 64KiB, 10MB)`},
		},
		{
			name: "no connections allowed",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limits: {maxConnections: -5}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: limits.maxConnections: -5: want at least 1`},
		},
		{
			name: "negative size",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limits: {maxHeaderBytes: -1}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: limits.maxHeaderBytes: "-1" is not a size (want e.g. 65536, 64KiB, 10MB)`},
		},
		{
			name: "size overflows",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    retry: {bufferBytes: 99999999999GiB}
`,
			want: []string{`t.yaml:7: groups[0].retry.bufferBytes: "99999999999GiB" is not a size (want e.g. 65536, 64KiB, 10MB)`},
		},
		{
			name: "size given a mapping",
			yaml: `listeners:
  - {name: web, address: ":8080"}
limits:
  maxHeaderBytes: {kib: 64}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:4: limits.maxHeaderBytes: want a size such as 65536 or 64KiB`},
		},
		{
			name: "duplicate group names",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
  - name: app
    hosts: [app.example.com]
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:7: groups[1].name: group "app" is defined twice`},
		},
		{
			name: "group and server names of other characters",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: "a:b"
    servers:
      - {name: "s 1", address: "a.local:80"}
`,
			want: []string{
				`t.yaml:4: groups[0].name: "a:b": use letters, digits, '-', '_' and '.' (at most 63)`,
				`t.yaml:6: groups[0].servers[0].name: "s 1": use letters, digits, '-', '_' and '.' (at most 63)`,
			},
		},
		{
			name: "duplicate server names",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
      - {name: a, address: "b.local:80"}
`,
			want: []string{`t.yaml:7: groups[0].servers[1].name: server "a" is defined twice in group "app"`},
		},
		{
			name: "duplicate listener names",
			yaml: `listeners:
  - {name: web, address: ":8080"}
  - name: web
    address: ":8081"
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: listeners[1].name: listener "web" is defined twice`},
		},
		{
			name: "duplicate listener addresses",
			yaml: `listeners:
  - {name: web, address: ":8080"}
  - {name: web2, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: listeners[1].address: address ":8080" is used by another listener`},
		},
		{
			name: "pin naming no server",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    pin:
      - {host: a.example.com, server: b}
`,
			want: []string{`t.yaml:8: groups[0].pin[0].server: no server named "b" in group "app"`},
		},
		{
			name: "pin with wildcard host and no server",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    pin:
      - host: "*.example.com"
`,
			want: []string{
				`t.yaml:8: groups[0].pin[0].host: "*.example.com" is not an exact host name (no port, no wildcard)`,
				`t.yaml:8: groups[0].pin[0].server: required`,
			},
		},
		{
			name: "listener port out of range",
			yaml: `listeners:
  - {name: web, address: ":65536"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:2: listeners[0].address: port "65536" is out of range 1-65535`},
		},
		{
			name: "server port zero",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:0"}
`,
			want: []string{`t.yaml:6: groups[0].servers[0].address: port "0" is out of range 1-65535`},
		},
		{
			name: "health port out of range",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {port: 70000}
`,
			want: []string{`t.yaml:7: groups[0].health.port: port 70000 is out of range 1-65535`},
		},
		{
			name: "missing server address",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a}
`,
			want: []string{`t.yaml:6: groups[0].servers[0].address: required`},
		},
		{
			name: "server address without host",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: ":80"}
`,
			want: []string{`t.yaml:6: groups[0].servers[0].address: ":80": host is missing`},
		},
		{
			name: "missing listener address and name",
			yaml: `listeners:
  - {redirectHTTPS: false}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{
				`t.yaml:2: listeners[0].name: required`,
				`t.yaml:2: listeners[0].address: required`,
			},
		},
		{
			name: "bad mode",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    mode: activepassive
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:5: groups[0].mode: "activepassive": want failover or roundrobin`},
		},
		{
			name: "passive noProgress too short and too long",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    passive: {noProgress: 50ms}
    servers:
      - {name: a, address: "a.local:80"}
  - name: other
    hosts: [other.local]
    timeouts: {response: 3s}
    passive:
      noProgress: 5s
    servers:
      - {name: b, address: "b.local:80"}
`,
			want: []string{
				`t.yaml:5: groups[0].passive.noProgress: 50ms is too short (minimum 100ms; 0 disables)`,
				`t.yaml:12: groups[1].passive.noProgress: 5s is not shorter than timeouts.response 3s: it could never trip`,
			},
		},
		{
			name: "bad failback policy",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    failback: {policy: immediate}
`,
			want: []string{`t.yaml:7: groups[0].failback.policy: "immediate": want auto or manual`},
		},
		{
			name: "after with manual",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    failback:
      policy: manual
      after: 30s
`,
			want: []string{`t.yaml:9: groups[0].failback.after: only applies to policy auto`},
		},
		{
			name: "status out of range",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      expect: {status: 600}
`,
			want: []string{`t.yaml:8: groups[0].health.expect.status: status "600" is out of range 100-599`},
		},
		{
			name: "status set with bad items",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      expect:
        status:
          - 200
          - ok
          - "300-200"
          - 6xx
`,
			// A field is reported once: the first bad item wins.
			want: []string{`t.yaml:11: groups[0].health.expect.status: "ok" is not a status, a range such as 200-299, or a class such as 2xx`},
		},
		{
			name: "status reversed range",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {expect: {status: "399-300"}}
`,
			want: []string{`t.yaml:7: groups[0].health.expect.status: status "399-300" is out of range 100-599`},
		},
		{
			name: "status is a mapping",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {expect: {status: {code: 200}}}
`,
			want: []string{`t.yaml:7: groups[0].health.expect.status: want a status such as 200, "200-299" or "2xx"`},
		},
		{
			name: "bad regexp",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      expect: {bodyRegexp: "version: ("}
`,
			want: []string{"t.yaml:8: groups[0].health.expect.bodyRegexp: error parsing regexp: missing closing ): `version: (`"},
		},
		{
			name: "timeout longer than interval",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health:
      interval: 1s
      timeout: 1500ms
`,
			want: []string{`t.yaml:9: groups[0].health.timeout: 1.5s is longer than the interval 1s`},
		},
		{
			name: "timeout longer than default interval",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {timeout: 2s}
`,
			want: []string{`t.yaml:7: groups[0].health.timeout: 2s is longer than the interval 1s`},
		},
		{
			name: "interval too short",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {interval: 5ms}
`,
			want: []string{
				`t.yaml:7: groups[0].health.interval: 5ms is too short (minimum 10ms)`,
				`t.yaml:7: groups[0].health.fastInterval: 5ms is too short (minimum 10ms)`,
			},
		},
		{
			name: "sticky outside roundrobin",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    sticky: {cookie: TANDEM_SERVER}
`,
			want: []string{`t.yaml:7: groups[0].sticky: sticky sessions only apply to mode roundrobin`},
		},
		{
			name: "sticky bad cookie name",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    mode: roundrobin
    servers:
      - {name: a, address: "a.local:80"}
    sticky: {cookie: "my cookie"}
`,
			want: []string{`t.yaml:8: groups[0].sticky.cookie: "my cookie" is not a valid cookie name`},
		},
		{
			name: "hsts without tls",
			yaml: `listeners:
  - name: web
    address: ":8080"
    hsts: {maxAge: 16000000, preload: true}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:4: listeners[0].hsts: HSTS is only sent over HTTPS: this listener has no tls`},
		},
		{
			name: "tls without key and with bad minVersion",
			yaml: `listeners:
  - name: web
    address: ":8443"
    tls: {cert: tls.crt, minVersion: "1.1"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{
				`t.yaml:4: listeners[0].tls.key: required for a TLS listener`,
				`t.yaml:4: listeners[0].tls.minVersion: "1.1": want 1.2 or 1.3`,
			},
		},
		{
			name: "redirect with no tls listener",
			yaml: `listeners:
  - {name: web, address: ":8080", redirectHTTPS: true}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:2: listeners[0].redirectHTTPS: no TLS listener to redirect to: add one or set httpsPort`},
		},
		{
			name: "non-loopback admin without token",
			yaml: `listeners:
  - {name: web, address: ":8080"}
admin:
  address: "0.0.0.0:9901"
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:4: admin.address: "0.0.0.0:9901" is not loopback: set admin.tokenFile so the admin API requires a token`},
		},
		{
			name: "admin on a public listener address",
			yaml: `listeners:
  - {name: web, address: "127.0.0.1:8080"}
admin: {address: "127.0.0.1:8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: admin.address: address "127.0.0.1:8080" is also a public listener`},
		},
		{
			name: "duplicate hosts across groups",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: one
    hosts: [a.example.com, b.example.com]
    servers:
      - {name: a, address: "a.local:80"}
  - name: two
    hosts:
      - c.example.com
      - B.Example.com
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:11: groups[1].hosts[1]: host "b.example.com" is already routed to group "one"`},
		},
		{
			name: "host with port",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: one
    hosts: [a.example.com:443]
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:5: groups[0].hosts[0]: "a.example.com:443": give the host without a port`},
		},
		{
			name: "two catch-all groups",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: one
    servers:
      - {name: a, address: "a.local:80"}
  - name: two
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:7: groups[1].hosts: group "two" has no hosts but "one" already receives every other host`},
		},
		{
			name: "key given twice",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
log:
  format: json
  level: info
  format: text
`,
			want: []string{`t.yaml:10: log.format: given twice`},
		},
		{
			// The decoder refuses a mapping with a duplicate key; the walk
			// drops it so the rest of the group is still read and checked.
			name: "key given twice inside a group hides nothing else",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    mode: failover
    mode: roundrobin
    servers:
      - {name: a, address: "a.local:80"}
    health: {rise: 1, rise: 2, timeout: 5s}
`,
			want: []string{
				`t.yaml:6: groups[0].mode: given twice`,
				`t.yaml:9: groups[0].health.rise: given twice`,
				`t.yaml:9: groups[0].health.timeout: 5s is longer than the interval 1s`,
			},
		},
		{
			name: "a bad list item keeps the index of the next",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - oops
      - {name: b, address: "b.local:0"}
`,
			want: []string{
				`t.yaml:6: groups[0].servers[0]: want a mapping of fields, got "oops"`,
				`t.yaml:7: groups[0].servers[1].address: port "0" is out of range 1-65535`,
			},
		},
		{
			name: "string where an int is expected",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: {rise: two}
`,
			want: []string{`t.yaml:7: groups[0].health.rise: want a whole number, got "two"`},
		},
		{
			name: "string where a bool is expected",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
      - {name: b, address: "b.local:80", backup: "yes"}
`,
			want: []string{`t.yaml:7: groups[0].servers[1].backup: want true or false, got "yes"`},
		},
		{
			name: "mapping where a list is expected",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      name: a
      address: "a.local:80"
`,
			want: []string{
				`t.yaml:6: groups[0].servers: want a list, got a mapping`,
			},
		},
		{
			name: "list where a string is expected",
			yaml: `listeners:
  - {name: [web], address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:2: listeners[0].name: want a string, got a list`},
		},
		{
			name: "scalar where a mapping is expected",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    health: fast
`,
			want: []string{`t.yaml:7: groups[0].health: want a mapping of fields, got "fast"`},
		},
		{
			name: "every server is a backup",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80", backup: true}
      - {name: b, address: "b.local:80", backup: true}
`,
			want: []string{`t.yaml:5: groups[0].servers: every server is a backup: at least one must not be`},
		},
		{
			name: "no listeners and no groups",
			yaml: "log: {format: json}\n",
			want: []string{
				`t.yaml: listeners: at least one listener is required`,
				`t.yaml: groups: at least one group is required`,
			},
		},
		{
			name: "group without servers",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers: []
`,
			want: []string{`t.yaml:5: groups[0].servers: at least one server is required (or kubernetes: to discover them)`},
		},
		{
			name: "discovery without the kubernetes section",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    kubernetes: {selector: app=x, port: http}
`,
			want: []string{`t.yaml:5: groups[0].kubernetes: discovery needs the top-level kubernetes section (kubeconfig, or {} in the cluster)`},
		},
		{
			name: "discovery mistakes",
			yaml: `listeners:
  - {name: web, address: ":8080"}
kubernetes:
  namespace: Bad_NS
  coordination: {leaseDuration: 5s, renewDeadline: 6s, heartbeat: 10s}
groups:
  - name: app
    servers: [{name: a, address: "127.0.0.1:1"}]
    kubernetes:
      selector: ""
      port: "99999"
      healthPort: "not a port!"
      address: node
`,
			want: []string{
				`t.yaml:4: kubernetes.namespace: "Bad_NS" is not a valid namespace name`,
				`t.yaml:5: kubernetes.coordination.renewDeadline: 6s must be shorter than leaseDuration 5s`,
				`t.yaml:5: kubernetes.coordination.heartbeat: 10s must be shorter than fenceAfter 5s`,
				`t.yaml:8: groups[0].servers: a group takes its servers from the file or from the cluster, not both: remove servers or kubernetes`,
				`t.yaml:10: groups[0].kubernetes.selector: required: a label selector of the group's pods, e.g. app=sense (or service: the name of a Service, for its EndpointSlices)`,
				`t.yaml:11: groups[0].kubernetes.port: port 99999 is out of range 1-65535`,
				`t.yaml:12: groups[0].kubernetes.healthPort: "not a port!" is neither a port number nor a container port name`,
				`t.yaml:13: groups[0].kubernetes.address: "node": want pod or service`,
			},
		},
		{
			name: "discovery from a Service's EndpointSlices: mistakes",
			yaml: `listeners:
  - {name: web, address: ":8080"}
kubernetes: {}
groups:
  - name: both
    kubernetes: {selector: app=x, service: sense, port: http}
  - name: badname
    hosts: [b.local]
    kubernetes: {service: Sense_1, port: http}
  - name: lb
    hosts: [lb.local]
    kubernetes:
      service: sense
      port: http
      address: service
  - name: self
    hosts: [self.local]
    kubernetes: {service: sense, port: http, activeService: sense}
`,
			want: []string{
				`t.yaml:6: groups[0].kubernetes.service: selector and service are exclusive: the servers are the pods of a selector or the endpoints of a Service; remove one`,
				`t.yaml:9: groups[1].kubernetes.service: "Sense_1": want the name of a Service (a DNS label)`,
				`t.yaml:15: groups[2].kubernetes.address: address: service publishes each pod of a selector as its own Service; with service the servers are its endpoints' addresses: remove address or use selector`,
				`t.yaml:18: groups[3].kubernetes.activeService: "sense" is the group's service: name another, selector-less Service, which holds the active server only`,
			},
		},
		{
			name: "unknown engine",
			yaml: `engine: nginx
listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:1: engine: "nginx": want tandem or net/http`},
		},
		{
			name: "bad log format and level",
			yaml: `listeners:
  - {name: web, address: ":8080"}
log:
  format: xml
  level: verbose
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{
				`t.yaml:4: log.format: "xml": want json or text`,
				`t.yaml:5: log.level: "verbose": want debug, info, warn or error`,
			},
		},
		{
			name: "bad trusted proxy",
			yaml: `listeners:
  - {name: web, address: ":8080"}
trustedProxies: [10.0.0.0/8, 10.0.0.300]
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
`,
			want: []string{`t.yaml:3: trustedProxies[1]: "10.0.0.300" is not an address or CIDR prefix`},
		},
		{
			name: "retry attempts and buffer",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    maxBodyBytes: 1KiB
    retry:
      attempts: 11
      bufferBytes: 2KiB
`,
			want: []string{
				`t.yaml:9: groups[0].retry.attempts: 11: want 1 to 10 tries`,
				`t.yaml:10: groups[0].retry.bufferBytes: larger than maxBodyBytes (1024)`,
			},
		},
		{
			name: "websocket path and onSwitch",
			yaml: `listeners:
  - {name: web, address: ":8080"}
groups:
  - name: app
    servers:
      - {name: a, address: "a.local:80"}
    websocket: {paths: [ws], onSwitch: drop}
`,
			want: []string{
				`t.yaml:7: groups[0].websocket.paths[0]: "ws" must start with /`,
				`t.yaml:7: groups[0].websocket.onSwitch: "drop": want close or keep`,
			},
		},
		{
			name: "yaml syntax error: tab indentation",
			yaml: "listeners:\n  - {name: web, address: \":8080\"}\ngroups:\n\t- name: app\n",
			want: []string{`t.yaml:4: found character that cannot start any token`},
		},
		{
			name: "yaml syntax error: unterminated string",
			yaml: "listeners:\n  - {name: web, address: \":8080}\n",
			want: []string{`t.yaml:2: found unexpected end of stream`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with an error")
			}
			got := messages(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if want := strings.Join(tt.want, "\n"); err.Error() != want {
				t.Errorf("err.Error() = %q, want %q", err.Error(), want)
			}
			for _, p := range config.Problems(err) {
				if p.File != "t.yaml" {
					t.Errorf("problem %q has File %q", p, p.File)
				}
			}
		})
	}
}

// TestParseListsEveryMistake checks that one run reports all problems of a
// file, sorted by line, each one once.
func TestParseListsEveryMistake(t *testing.T) {
	const data = `listeners:
  - {name: web, address: ":8080", hsts: {maxAge: 100}}
  - {name: web, address: ":99999"}
admin: {address: "0.0.0.0:9901"}
groups:
  - name: app
    mode: failovr
    servers:
      - {name: a, address: "a.local:80", backupp: true}
      - {name: a, address: "b"}
    pin:
      - {host: x.example.com, server: zz}
    health: {interval: 1s, timeout: 2s, rise: many}
    failback: {policy: manual, after: 10s}
    sticky: {cookie: S}
  - name: app
    maxBodyBytes: lots
    servers:
      - {name: c, address: "c.local:80"}
`
	want := []string{
		`t.yaml:2: listeners[0].hsts: HSTS is only sent over HTTPS: this listener has no tls`,
		`t.yaml:3: listeners[1].name: listener "web" is defined twice`,
		`t.yaml:3: listeners[1].address: port "99999" is out of range 1-65535`,
		`t.yaml:4: admin.address: "0.0.0.0:9901" is not loopback: set admin.tokenFile so the admin API requires a token`,
		`t.yaml:7: groups[0].mode: "failovr": want failover or roundrobin`,
		`t.yaml:9: groups[0].servers[0].backupp: unknown field (did you mean "backup"?)`,
		`t.yaml:10: groups[0].servers[1].name: server "a" is defined twice in group "app"`,
		`t.yaml:10: groups[0].servers[1].address: "b": want host:port`,
		`t.yaml:12: groups[0].pin[0].server: no server named "zz" in group "app"`,
		`t.yaml:13: groups[0].health.rise: want a whole number, got "many"`,
		`t.yaml:13: groups[0].health.timeout: 2s is longer than the interval 1s`,
		`t.yaml:14: groups[0].failback.after: only applies to policy auto`,
		`t.yaml:15: groups[0].sticky: sticky sessions only apply to mode roundrobin`,
		`t.yaml:16: groups[1].name: group "app" is defined twice`,
		`t.yaml:16: groups[1].hosts: group "app" has no hosts but "app" already receives every other host`,
		`t.yaml:17: groups[1].maxBodyBytes: "lots" is not a size (want e.g. 65536, 64KiB, 10MB)`,
	}
	_, err := config.Parse("t.yaml", []byte(data))
	got := messages(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	ps := config.Problems(err)
	seen := map[string]bool{}
	for i, p := range ps {
		if i > 0 && p.Line < ps[i-1].Line {
			t.Errorf("problem %d (line %d) comes after line %d: not sorted", i, p.Line, ps[i-1].Line)
		}
		if seen[p.Field] {
			t.Errorf("field %s reported twice", p.Field)
		}
		seen[p.Field] = true
	}
}

// readmeConfig is the example of README.md.
const readmeConfig = `listeners:
  - {name: https, address: ":8443", tls: {cert: tls.crt, key: tls.key}, hsts: {maxAge: 16000000, preload: true}}
  - {name: http, address: ":8080", redirectHTTPS: true}     # 301 to https://same-host:8443/same/path?query
admin: {address: "127.0.0.1:9901"}      # loopback by default; tokenFile is required elsewhere
log: {format: json, level: info, access: false}
limits: {maxHeaderBytes: 64KiB, readHeaderTimeout: 10s, idleTimeout: 120s, drain: 10s}
trustedProxies: [10.0.0.0/8]            # whose X-Forwarded-* / Forwarded are believed
engine: tandem                          # or net/http: net/http's server and Transport serve instead (a kill switch)
groups:
  - name: sense
    hosts: [sense.domain.com, master.domain.com, failover.domain.com]   # none = every other host
    mode: failover                      # or roundrobin
    servers:
      - {name: sen2, address: react2.domain.com:8079}
      - {name: sen1, address: react1.domain.com:8079, backup: true}     # backups come last
    pin:                                # HAProxy's use-server by Host
      - {host: master.domain.com, server: sen2}
      - {host: failover.domain.com, server: sen1, strict: true}         # strict: 503 when sen1 is down
    health:
      path: /status
      port: 8079                        # may differ from the traffic port
      expect: {status: [200, "300-399"], body: version}                 # or bodyRegexp
      interval: 1s
      fastInterval: 250ms               # while down or changing state
      timeout: 500ms
      rise: 2
      fall: 2
    passive: {maxFails: 3, window: 10s, count5xx: false}  # refused/reset/failed dials mark down at once
    failback: {policy: auto, after: 10s}                  # auto | manual
    websocket: {paths: [/websocket], requireUpgrade: true, onSwitch: close}
    retry: {attempts: 3, perTryTimeout: 1s, bufferBytes: 64KiB}
    timeouts: {connect: 2s, response: 60s}
    maxBodyBytes: 10MiB
    # sticky: {cookie: TANDEM_SERVER}   # roundrobin mode only
`

func TestParseReadmeExample(t *testing.T) {
	cfg, err := config.Parse("tandem.yaml", []byte(readmeConfig))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &config.Config{
		File:   "tandem.yaml",
		Engine: config.EngineTandem,
		Listeners: []config.Listener{
			{Name: "https", Address: ":8443", TLS: &config.TLS{Cert: "tls.crt", Key: "tls.key", MinVersion: "1.2"},
				HSTS: &config.HSTS{MaxAge: 16000000, Preload: true}},
			{Name: "http", Address: ":8080", RedirectHTTPS: true},
		},
		Admin: config.Admin{Address: "127.0.0.1:9901"},
		Log:   config.Log{Format: "json", Level: "info"},
		Limits: config.Limits{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: config.Duration(10 * time.Second),
			IdleTimeout: config.Duration(120 * time.Second), MaxConnections: 10000, Drain: config.Duration(10 * time.Second)},
		TrustedProxies: []string{"10.0.0.0/8"},
		Groups: []config.Group{{
			Name:  "sense",
			Hosts: []string{"sense.domain.com", "master.domain.com", "failover.domain.com"},
			Mode:  config.ModeFailover,
			Servers: []config.Server{
				{Name: "sen2", Address: "react2.domain.com:8079"},
				{Name: "sen1", Address: "react1.domain.com:8079", Backup: true},
			},
			Pin: []config.Pin{
				{Host: "master.domain.com", Server: "sen2"},
				{Host: "failover.domain.com", Server: "sen1", Strict: true},
			},
			Health: config.Health{
				Method: "GET", Path: "/status", Port: 8079,
				Expect:   config.Expect{Status: config.StatusSet{{Lo: 200, Hi: 200}, {Lo: 300, Hi: 399}}, Body: "version"},
				Interval: config.Duration(time.Second), FastInterval: config.Duration(250 * time.Millisecond),
				Timeout: config.Duration(500 * time.Millisecond), Rise: 2, Fall: 2,
			},
			Passive:      config.Passive{MaxFails: 3, Window: config.Duration(10 * time.Second), BaseEjectionTime: config.Duration(5 * time.Second), MaxEjectionTime: config.Duration(5 * time.Minute)},
			Failback:     config.Failback{Policy: config.FailbackAuto, After: config.Duration(10 * time.Second)},
			Websocket:    config.Websocket{Paths: []string{"/websocket"}, RequireUpgrade: true, OnSwitch: "close", DrainGrace: config.Duration(5 * time.Second)},
			Retry:        config.Retry{Attempts: 3, PerTryTimeout: config.Duration(time.Second), BufferBytes: 64 << 10},
			Timeouts:     config.Timeouts{Connect: config.Duration(2 * time.Second), Response: config.Duration(60 * time.Second), BodyIdle: config.Duration(60 * time.Second)},
			MaxBodyBytes: 10 << 20,
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse(README example):\n got %+v\nwant %+v", cfg, want)
	}
}

// TestParseDefaults checks every default on the smallest valid file.
func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *config.Config)
	}{
		{
			name: "minimal",
			yaml: `listeners: [{name: web, address: ":8080"}]
groups: [{name: app, servers: [{name: a, address: "a.local:80"}]}]
`,
			check: func(t *testing.T, c *config.Config) {
				want := config.Group{
					Name:    "app",
					Mode:    config.ModeFailover,
					Servers: []config.Server{{Name: "a", Address: "a.local:80"}},
					Health: config.Health{Method: "GET", Path: "/status",
						Expect:   config.Expect{Status: config.StatusSet{{Lo: 200, Hi: 299}}},
						Interval: config.Duration(config.DefaultInterval), FastInterval: config.Duration(config.DefaultFastInterval),
						Timeout: config.Duration(config.DefaultTimeout), Rise: 2, Fall: 2},
					Passive:      config.Passive{MaxFails: 3, Window: config.Duration(10 * time.Second), BaseEjectionTime: config.Duration(5 * time.Second), MaxEjectionTime: config.Duration(5 * time.Minute)},
					Failback:     config.Failback{Policy: config.FailbackAuto},
					Websocket:    config.Websocket{OnSwitch: "close", DrainGrace: config.Duration(5 * time.Second)},
					Retry:        config.Retry{Attempts: 3, BufferBytes: 64 << 10},
					Timeouts:     config.Timeouts{Connect: config.Duration(2 * time.Second), Response: config.Duration(time.Minute), BodyIdle: config.Duration(time.Minute)},
					MaxBodyBytes: 10 << 20,
				}
				if !reflect.DeepEqual(c.Groups[0], want) {
					t.Errorf("group defaults:\n got %+v\nwant %+v", c.Groups[0], want)
				}
				if c.Admin.Address != "127.0.0.1:9901" || c.Log.Format != "text" || c.Log.Level != "info" {
					t.Errorf("admin/log defaults: %+v %+v", c.Admin, c.Log)
				}
				if c.Engine != config.EngineTandem {
					t.Errorf("engine default %q, want %q", c.Engine, config.EngineTandem)
				}
				wantLimits := config.Limits{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: config.Duration(10 * time.Second),
					IdleTimeout: config.Duration(2 * time.Minute), MaxConnections: 10000, Drain: config.Duration(10 * time.Second)}
				if c.Limits != wantLimits {
					t.Errorf("limits defaults: got %+v, want %+v", c.Limits, wantLimits)
				}
			},
		},
		{
			name: "short interval bounds fastInterval and timeout",
			yaml: `listeners: [{name: web, address: ":8080"}]
groups: [{name: app, health: {interval: 100ms}, servers: [{name: a, address: "a.local:80"}]}]
`,
			check: func(t *testing.T, c *config.Config) {
				h := c.Groups[0].Health
				if h.FastInterval.D() != 100*time.Millisecond || h.Timeout.D() != 100*time.Millisecond {
					t.Errorf("fastInterval %v, timeout %v; want both 100ms", h.FastInterval.D(), h.Timeout.D())
				}
			},
		},
		{
			name: "status classes and sizes",
			yaml: `listeners: [{name: web, address: ":8080"}]
groups:
  - name: app
    maxBodyBytes: 10MB
    retry: {bufferBytes: 1000}
    health: {expect: {status: 2xx}}
    servers: [{name: a, address: "a.local:80"}]
`,
			check: func(t *testing.T, c *config.Config) {
				g := c.Groups[0]
				if g.MaxBodyBytes != 10*1000*1000 || g.Retry.BufferBytes != 1000 {
					t.Errorf("sizes: maxBodyBytes %d, bufferBytes %d", g.MaxBodyBytes, g.Retry.BufferBytes)
				}
				if want := (config.StatusSet{{Lo: 200, Hi: 299}}); !reflect.DeepEqual(g.Health.Expect.Status, want) {
					t.Errorf("status %v, want %v", g.Health.Expect.Status, want)
				}
			},
		},
		{
			name: "admin elsewhere with a token",
			yaml: `listeners: [{name: web, address: ":8080"}]
admin: {address: "0.0.0.0:9901", tokenFile: /run/token}
groups:
  - name: app
    mode: roundrobin
    sticky: {cookie: S}
    servers: [{name: a, address: "a.local:80"}, {name: b, address: "[::1]:80"}]
`,
			check: func(t *testing.T, c *config.Config) {
				if c.Groups[0].Sticky == nil || c.Groups[0].Sticky.Cookie != "S" {
					t.Errorf("sticky: %+v", c.Groups[0].Sticky)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestStatusSetContains(t *testing.T) {
	s := config.StatusSet{{Lo: 200, Hi: 200}, {Lo: 300, Hi: 399}}
	for code, want := range map[int]bool{199: false, 200: true, 201: false, 300: true, 399: true, 400: false} {
		if got := s.Contains(code); got != want {
			t.Errorf("Contains(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "65536", want: 65536},
		{in: "64KiB", want: 64 << 10},
		{in: "1 MiB", want: 1 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "10KB", want: 10000},
		{in: "10MB", want: 10000000},
		{in: "1GB", want: 1000000000},
		{in: "7B", want: 7},
		{in: "", bad: true},
		{in: "KiB", bad: true},
		{in: "-1", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "10mb", bad: true},
		{in: "99999999999GiB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseSize(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(readmeConfig))
	f.Add([]byte(""))
	f.Add([]byte("listeners: [{name: web, address: \":8080\"}]\ngroups: [{name: app, servers: [{name: a, address: \"a.local:80\"}]}]\n"))
	f.Add([]byte("groups:\n  - name: app\n    mode: roundrobin\n    sticky: {cookie: S}\n    servers: {name: a}\n"))
	f.Add([]byte("listeners:\n  - {name: web, address: \":8080\"\n"))
	f.Add([]byte("groups: [{name: a, health: {interval: 1x, expect: {status: [200, \"3xx\", \"700\", {a: b}], bodyRegexp: \"(\"}}}]\n"))
	f.Add([]byte("limits: {maxHeaderBytes: 64KiB, drain: -1s}\nlimits: {}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		if cfg != nil {
			t.Fatal("Parse returned a config along with an error")
		}
		ps := config.Problems(err)
		if len(ps) == 0 {
			t.Fatalf("error %q holds no Problem", err)
		}
		for _, p := range ps {
			if p.Msg == "" {
				t.Errorf("problem %+v has an empty message", p)
			}
			if p.File != "fuzz.yaml" {
				t.Errorf("problem %+v has File %q, want fuzz.yaml", p, p.File)
			}
		}
	})
}
