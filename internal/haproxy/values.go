package haproxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// val is a setting read from the source, with the line that set it (nil:
// not set).
type val[T any] struct {
	v T
	l *Line
}

func (x val[T]) set() bool { return x.l != nil }

func (x *val[T]) put(v T, l *Line) { x.v, x.l = v, l }

// layer sets dst to src where src is set.
func layer[T any](dst *val[T], src val[T]) {
	if src.set() {
		*dst = src
	}
}

// tcpAddress splits an HAProxy address, host:port with an optional ipv4@
// or ipv6@; ok is false for the other families (unix@, fd@, a path...) and
// an address without a port or with a stray bracket. An IPv6 host comes
// without its brackets.
func tcpAddress(a string) (host, port string, ok bool) {
	for _, p := range []string{"ipv4@", "ipv6@"} {
		a = strings.TrimPrefix(a, p)
	}
	i := strings.LastIndexByte(a, ':')
	if strings.Contains(a, "@") || strings.HasPrefix(a, "/") || i < 0 {
		return "", "", false
	}
	host, port = a[:i], a[i+1:]
	if h, ok := strings.CutPrefix(host, "["); ok {
		host, ok = strings.CutSuffix(h, "]")
		if !ok {
			return "", "", false
		}
	}
	// What is left must make a host:port again (net.SplitHostPort's rules,
	// which tandem's config applies): no stray bracket.
	if strings.ContainsAny(host, "[]") {
		return "", "", false
	}
	return host, port, true
}

// maxTime is the longest time HAProxy takes (a timer of 2^31-1 ms).
const maxTime = (1<<31 - 1) * time.Millisecond

// parseTime reads an HAProxy time: a number with an optional unit (us,
// ms, s, m, h, d); no unit means milliseconds. Above maxTime it refuses
// it, as HAProxy does, before it could overflow a time.Duration.
func parseTime(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	num, unit := s, time.Millisecond
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, unit = n, u.d
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time (want e.g. 500, 500ms, 2s, 1m)", s)
	}
	if n > uint64(maxTime/unit) {
		return 0, fmt.Errorf("%q is longer than HAProxy's longest time, 2147483647ms (about 24.8 days)", s)
	}
	return time.Duration(n) * unit, nil
}

// fmtDuration writes d as the config reads it, in its largest whole unit
// (40s, not 40000ms or 0h0m40s).
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// parseCount reads a whole number in [lo, hi].
func parseCount(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q: want a whole number from %d to %d", s, lo, hi)
	}
	return n, nil
}
