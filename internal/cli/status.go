package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/failover"
	"go.yaml.in/yaml/v3"
)

// Output formats of status and history.
var (
	statusFormats  = []string{"table", "wide", "json", "yaml"}
	historyFormats = []string{"table", "json", "yaml"}
)

// checkFormat refuses an output format that is not one of formats.
func checkFormat(got string, formats []string) error {
	if slices.Contains(formats, got) {
		return nil
	}
	return &exitError{code: ExitError, err: fmt.Errorf("-o %q: want one of %s", got, strings.Join(formats, ", "))}
}

// printStructured writes v as indented JSON or as YAML with the JSON's
// field names and order (the admin API's own names).
func printStructured(w io.Writer, format string, v any) error {
	if format == "json" {
		return printJSON(w, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// JSON is YAML: decoding it keeps the keys' order, and dropping the
	// flow style prints it as block YAML.
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	blockStyle(&n)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	_, err = w.Write(out.Bytes())
	return err
}

func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
		// Quotes only where YAML needs them ("on", "1", "" ...).
		n.Style &^= yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// renderStatus writes st as a table (wide: with addresses, last checks
// and websockets) followed by one line per group saying what decides its
// active server now, and the replicas' coordination when there is one.
func renderStatus(w io.Writer, st admin.State, wide bool, now time.Time, paint func(colour, s string) string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	pods := false
	for _, g := range st.Groups {
		for _, s := range g.Servers {
			pods = pods || s.Pod != ""
		}
	}
	head := "GROUP\tSERVER\tSTATE\tROLE"
	if wide {
		head = "GROUP\tSERVER\tADDRESS\tSTATE\tROLE\tWS\tLAST CHECK"
		if pods {
			head += "\tPOD"
		}
	}
	fmt.Fprintln(tw, head)
	for _, g := range st.Groups {
		for _, s := range g.Servers {
			// Every cell of a coloured column is painted, plain ones in
			// the default colour, so escapes do not skew the columns.
			role, roleColour := "standby", plain
			switch {
			case g.Mode != "failover":
				role = "roundrobin"
			case s.Name == g.Active && g.Fenced:
				role, roleColour = "ACTIVE,fenced", red
			case s.Name == g.Active:
				role, roleColour = "ACTIVE", green
			}
			state, stateColour := s.State, plain
			switch {
			case s.State == "down":
				stateColour = red
			case s.Drained:
				state, stateColour = s.State+",drained", yellow
			}
			if s.HeldUntil != nil {
				state += ",held"
			}
			role, state = paint(roleColour, role), paint(stateColour, state)
			if !wide {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, s.Name, state, role)
				continue
			}
			check := "-"
			if c := s.LastCheck; c != nil {
				check = fmt.Sprintf("%s %.1fms %s ago %s", map[bool]string{true: "ok", false: "fail"}[c.OK], c.LatencyMS, ago(now, c.At), trim(c.Detail, 40))
			}
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%s", g.Name, s.Name, s.Address, state, role, s.Websockets, strings.TrimSpace(check))
			if pods {
				line += "\t" + dash(s.Pod)
			}
			fmt.Fprintln(tw, line)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range st.Groups {
		fmt.Fprintln(w, groupSummary(g, now))
		for _, s := range g.Servers {
			if h := s.HeldUntil; h != nil {
				fmt.Fprintln(w, heldLine(g.Name, s, *h, now))
			}
		}
	}
	if st.Cluster != nil {
		return renderCluster(w, st, now, paint)
	}
	return nil
}

// heldLine says until when a server ejected by its traffic is held down,
// whatever its checks say, and why.
func heldLine(group string, s admin.ServerState, until, now time.Time) string {
	line := fmt.Sprintf("%s: %s held down until %s", group, s.Name, until.In(now.Location()).Format("15:04:05"))
	if until.After(now) {
		line += " (in " + ago(until, now) + ")"
	}
	if s.HeldReason != "" {
		line += ": " + s.HeldReason
	}
	return line
}

// groupSummary says in one line what holds a group's active server and
// what would change it.
func groupSummary(g admin.GroupState, now time.Time) string {
	if g.Mode != "failover" {
		up := 0
		for _, s := range g.Servers {
			if s.State != "down" && !s.Drained {
				up++
			}
		}
		return fmt.Sprintf("%s: round robin over %d of %d servers", g.Name, up, len(g.Servers))
	}
	var b strings.Builder
	switch {
	case g.Fenced:
		fmt.Fprintf(&b, "%s: FENCED: this replica lost sight of the coordination state and sends to no server (503) until it sees a fresh decision", g.Name)
	case g.Revoking:
		fmt.Fprintf(&b, "%s: switching: the former server's role is revoked, the new one is granted once every replica has let go (epoch %d)", g.Name, g.Epoch)
	case g.Active == "":
		fmt.Fprintf(&b, "%s: NO ACTIVE SERVER (epoch %d)", g.Name, g.Epoch)
	default:
		fmt.Fprintf(&b, "%s: active %s, epoch %d", g.Name, g.Active, g.Epoch)
	}
	switch {
	case g.Hold:
		fmt.Fprintf(&b, "; OPERATOR HOLD on %s: no automatic failback until %s fails or someone runs `failback %s` (failback %s suspended)", g.Active, g.Active, g.Name, g.Failback)
	default:
		fmt.Fprintf(&b, "; failback %s", g.Failback)
	}
	if g.Pending != "" {
		switch {
		case g.PendingAt != nil && g.PendingAt.After(now):
			fmt.Fprintf(&b, "; %s fails back in %s", g.Pending, g.PendingAt.Sub(now).Round(100*time.Millisecond))
		case g.Hold || g.Failback == "manual":
			fmt.Fprintf(&b, "; %s waits for `failback %s`", g.Pending, g.Name)
		default:
			fmt.Fprintf(&b, "; %s waits for failback", g.Pending)
		}
	}
	return b.String()
}

// renderCluster writes the replicas' coordination: who leads, whether this
// replica is fenced, and each replica's acknowledged epochs and view.
func renderCluster(w io.Writer, st admin.State, now time.Time, paint func(colour, s string) string) error {
	c := st.Cluster
	fmt.Fprintln(w)
	leader := c.Leader
	if leader == "" {
		leader = paint(red, "none known")
	}
	fence := paint(green, "not fenced")
	if c.Fenced {
		fence = paint(red, "FENCED (sends to no server)")
	}
	contact := "never"
	if !c.LastContact.IsZero() {
		contact = ago(now, c.LastContact) + " ago"
	}
	role := "follower"
	if c.Leading {
		role = "leader"
	}
	fmt.Fprintf(w, "cluster: leader %s; this replica %s (%s), %s, last read of the coordination state %s\n", leader, c.Identity, role, fence, contact)
	var epochs []string
	for _, g := range st.Groups {
		if g.Mode == "failover" {
			epochs = append(epochs, fmt.Sprintf("%s=%d", g.Name, g.Epoch))
		}
	}
	if len(epochs) > 0 {
		fmt.Fprintf(w, "epoch: %s\n", strings.Join(epochs, " "))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tLIVE\tRENEWED\tACKED EPOCH\tSEES DOWN")
	for _, r := range c.Replicas {
		name := r.Identity
		var tags []string
		if r.Identity == c.Leader {
			tags = append(tags, "leader")
		}
		if r.Identity == c.Identity {
			tags = append(tags, "this")
		}
		if len(tags) > 0 {
			name += " (" + strings.Join(tags, ", ") + ")"
		}
		live := paint(green, "yes")
		if !r.Live {
			live = paint(red, "no")
		}
		renewed := "-"
		if !r.Renewed.IsZero() {
			renewed = ago(now, r.Renewed) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, live, renewed, dash(groupMap(r.Acked)), dash(downList(r.Down)))
	}
	return tw.Flush()
}

func groupMap(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func downList(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if len(m[k]) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(m[k], ","))
	}
	return strings.Join(parts, "; ")
}

// renderHistory writes a group's switches, oldest first, with the date and
// the time zone of each.
func renderHistory(w io.Writer, h []failover.Switch, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEPOCH\tFROM\tTO\tREASON\tBY")
	for _, sw := range h {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", sw.At.In(loc).Format(historyTime), sw.Epoch, dash(sw.From), dash(sw.To), sw.Reason, sw.By)
	}
	return tw.Flush()
}

// historyTime has the date and the zone: a history is read across days
// and by people in other zones.
const historyTime = "2006-01-02 15:04:05.000 MST"

// ago is how long before now t was, rounded for a person.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
