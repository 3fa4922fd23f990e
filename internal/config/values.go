package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// typeError reports a bad scalar the way yaml.v3 reports its own, so that the
// decoder collects it with the others instead of stopping at the first one.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}

// Duration is a time.Duration written as "500ms", "1s", "2m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string; a bare 0 is accepted.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a duration such as 500ms or 2s")
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return typeError(n, "%q is not a duration (want e.g. 500ms, 2s, 1m)", n.Value)
	}
	if v < 0 {
		return typeError(n, "duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go's notation.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count written as 1048576, "64KiB", "1MiB", "10MB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// UnmarshalYAML parses a byte count with an optional unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "want a size such as 65536 or 64KiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "64KiB", "10MB" or a plain number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (want e.g. 65536, 64KiB, 10MB)", s)
	}
	return v * mult, nil
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// StatusSet is a list of statuses or ranges: 200, "200-299", "2xx", or a list of those.
type StatusSet []StatusRange

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	for _, r := range s {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// UnmarshalYAML accepts one item or a sequence of items.
func (s *StatusSet) UnmarshalYAML(n *yaml.Node) error {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out StatusSet
	var problems []string
	for _, it := range items {
		r, err := parseStatus(it)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", it.Line, err))
			continue
		}
		out = append(out, r)
	}
	if problems != nil {
		return &yaml.TypeError{Errors: problems}
	}
	*s = out
	return nil
}

func parseStatus(n *yaml.Node) (StatusRange, error) {
	if n.Kind != yaml.ScalarNode {
		return StatusRange{}, fmt.Errorf("want a status such as 200, \"200-299\" or \"2xx\"")
	}
	return ParseStatus(n.Value)
}

// ParseStatus reads one item of a StatusSet: a status (200), a range
// (200-299) or a class (2xx), within 100-599. tandem import reads
// HAProxy's http-check expect status with it.
func ParseStatus(v string) (StatusRange, error) {
	v = strings.TrimSpace(v)
	bad := fmt.Errorf("%q is not a status, a range such as 200-299, or a class such as 2xx", v)
	if len(v) == 3 && strings.HasSuffix(v, "xx") {
		d := int(v[0] - '0')
		if d < 1 || d > 5 {
			return StatusRange{}, bad
		}
		return StatusRange{d * 100, d*100 + 99}, nil
	}
	lo, hi, isRange := strings.Cut(v, "-")
	a, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return StatusRange{}, bad
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
			return StatusRange{}, bad
		}
	}
	if a < 100 || b > 599 || a > b {
		return StatusRange{}, fmt.Errorf("status %q is out of range 100-599", v)
	}
	return StatusRange{a, b}, nil
}
