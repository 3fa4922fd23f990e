package ops

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// ANSI colours for the tables (the CLI paints only on a terminal).
const (
	ColourPlain  = "39"
	ColourRed    = "31"
	ColourGreen  = "32"
	ColourYellow = "33"
	ColourBlue   = "34"
)

// NoPaint leaves text alone.
func NoPaint(_, s string) string { return s }

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

// Age is how long ago t was, as kubectl shows it.
func Age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// durations writes a result's durations as "1.5s" rather than nanoseconds.
func durations(v any, ds map[string]time.Duration) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, d := range ds {
		m[k] = d.Round(time.Millisecond).String()
	}
	return json.Marshal(m)
}
