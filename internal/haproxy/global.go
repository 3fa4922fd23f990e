package haproxy

import (
	"strings"
)

// processSettings are global directives about HAProxy's process, which
// tandem leaves to its service manager or pod spec.
var processSettings = []string{"daemon", "master-worker", "user", "group", "uid", "gid", "chroot", "pidfile", "nbproc",
	"nbthread", "thread-groups", "cpu-map", "node", "description", "localpeer", "quiet", "zero-warning", "expose-experimental-directives",
	"server-state-file", "server-state-base", "spread-checks", "max-spread-checks", "set-dumpable", "strict-limits", "hard-stop-after-grace"}

// tlsBindOptions reads a TLS minimum version out of bind options
// (ssl-min-ver, no-tlsv1x), the others are returned as not understood.
func tlsBindOptions(words []string) (minVersion string, rest []string) {
	for i := 0; i < len(words); i++ {
		switch w := words[i]; w {
		case "ssl-min-ver":
			if i+1 < len(words) {
				i++
				switch words[i] {
				case "TLSv1.3":
					minVersion = "1.3"
				case "TLSv1.2":
					minVersion = "1.2"
				default:
					rest = append(rest, "ssl-min-ver "+words[i])
				}
			}
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "force-tlsv12":
			// tandem never offers less than TLS 1.2: nothing to do.
		case "no-tlsv12", "force-tlsv13":
			minVersion = "1.3"
		default:
			rest = append(rest, w)
		}
	}
	return minVersion, rest
}

func (tr *translator) global(l *Line) {
	kw, args := l.Words[0], l.Words[1:]
	t := tr.t
	switch {
	case kw == "crt-base" && len(args) == 1:
		tr.crtBase = args[0]
		t.ok(l)
	case kw == "ssl-default-bind-options":
		v, rest := tlsBindOptions(args)
		if v != "" {
			tr.minTLS.put(v, l)
		}
		if len(rest) > 0 {
			t.skip(l, "%s not translated (tandem offers TLS 1.2 and 1.3 with Go's defaults; tls.minVersion sets 1.3)", strings.Join(rest, " "))
		} else {
			t.ok(l)
		}
	case kw == "ssl-default-bind-ciphers" || kw == "ssl-default-bind-ciphersuites":
		t.skip(l, "tandem offers only forward-secret AEAD suites with TLS 1.2, and TLS 1.3's: none to choose")
	case kw == "tune.ssl.default-dh-param" || kw == "ssl-dh-param-file":
		t.skip(l, "tandem uses ECDHE key exchange only: no DH parameters")
	case kw == "hard-stop-after" && len(args) == 1:
		d, err := parseTime(args[0])
		if err != nil {
			t.fail(l, "%v", err)
			return
		}
		tr.drain.put(d, l)
		t.ok(l)
	case kw == "maxconn":
		t.skip(l, "a bound on the whole process: tandem bounds each listener (limits.maxConnections, from a frontend's or the defaults' maxconn)")
	case kw == "ulimit-n" || kw == "fd-hard-limit":
		t.skip(l, "tandem raises its file descriptor limit (RLIMIT_NOFILE) itself where the hard limit allows, and says so")
	case kw == "log" || strings.HasPrefix(kw, "log-"):
		t.skip(l, "tandem logs to stderr (log.format text or json, log.level): your service manager or collector takes it from there")
	case kw == "stats":
		t.skip(l, "tandem's admin API (admin.address, loopback by default) gives state and actions: `tandem status`, `switch`, `drain`")
	case kw == "lua-load" || kw == "lua-prepend-path" || strings.HasPrefix(kw, "lua-"):
		t.skip(l, "tandem runs no Lua: whatever the script does is left out")
	case kw == "setenv" || kw == "presetenv" || kw == "unsetenv" || kw == "resetenv":
		t.skip(l, "variables in the file were expanded from the environment of tandem import, not from this")
	case kw == "ca-base" || kw == "ssl-server-verify":
		t.skip(l, "tandem speaks plain HTTP to its servers: no server certificates to verify")
	case strings.HasPrefix(kw, "tune."):
		t.skip(l, "tandem has no such tuning: its buffers and limits are its own (limits.maxHeaderBytes bounds a request head)")
	default:
		for _, p := range processSettings {
			if kw == p {
				t.skip(l, "a setting of HAProxy's process: tandem leaves it to its service manager or pod spec")
				return
			}
		}
		t.skip(l, "tandem has no global setting like it")
	}
}
