package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/gateway"
)

// adminClient talks to a gateway's admin API.
type adminClient struct {
	base  string
	token string
}

func addAdminFlags(c *cobra.Command, ac *adminClient) {
	def := os.Getenv("TANDEM_ADMIN")
	if def == "" {
		def = "http://127.0.0.1:9901"
	}
	c.Flags().StringVar(&ac.base, "admin", def, "admin API URL (env TANDEM_ADMIN)")
	c.Flags().StringVar(&ac.token, "token", "", "admin API token (env TANDEM_TOKEN)")
}

func (ac *adminClient) do(method, path string, out any) error {
	req, err := http.NewRequest(method, strings.TrimSuffix(ac.base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("admin URL %q: %w", ac.base, err)
	}
	tok := ac.token
	if tok == "" {
		tok = os.Getenv("TANDEM_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if u := os.Getenv("USER"); u != "" {
		req.Header.Set("X-Tandem-User", u+" (cli)")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s is unreachable: %w", ac.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("refused (%d): %s", resp.StatusCode, e.Error)
		}
		return fmt.Errorf("refused (%d): %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("admin API answered something else than JSON: %w", err)
		}
	}
	return nil
}

func adminCmds() []*cobra.Command {
	var ac adminClient
	var output string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show every group: servers, health, active server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st gateway.State
			if err := ac.do(http.MethodGet, "/api/v1/state", &st); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(w, st)
			}
			paint := colours(w)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tSERVER\tADDRESS\tSTATE\tROLE\tWS\tLAST CHECK")
			for _, g := range st.Groups {
				for _, s := range g.Servers {
					// Every cell of a coloured column is painted, plain ones in
					// the default colour, so escapes do not skew the columns.
					role, roleColour := "standby", plain
					switch {
					case g.Mode != "failover":
						role = "roundrobin"
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
					role, state = paint(roleColour, role), paint(stateColour, state)
					check := ""
					if c := s.LastCheck; c != nil {
						check = fmt.Sprintf("%s %.1fms %s", map[bool]string{true: "ok", false: "fail"}[c.OK], c.LatencyMS, trim(c.Detail, 40))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", g.Name, s.Name, s.Address, state, role, s.Websockets, check)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, g := range st.Groups {
				if g.Pending != "" {
					fmt.Fprintf(w, "%s: %s\n", g.Name, g.Reason)
				}
			}
			return nil
		},
	}
	status.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	addAdminFlags(status, &ac)

	reload := &cobra.Command{
		Use: "reload", Short: "Reload the gateway's config file (a bad file is refused)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ac.do(http.MethodPost, "/api/v1/reload", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
			return nil
		},
	}
	addAdminFlags(reload, &ac)

	failback := &cobra.Command{
		Use: "failback GROUP", Short: "Return GROUP to its preferred server now", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ac.do(http.MethodPost, "/api/v1/groups/"+url.PathEscape(args[0])+"/failback", nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: failed back\n", args[0])
			return nil
		},
	}
	addAdminFlags(failback, &ac)

	sw := &cobra.Command{
		Use: "switch GROUP SERVER", Short: "Make SERVER the active server of GROUP and hold it there", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ac.do(http.MethodPost, "/api/v1/groups/"+url.PathEscape(args[0])+"/switch/"+url.PathEscape(args[1]), nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: switched to %s\n", args[0], args[1])
			return nil
		},
	}
	addAdminFlags(sw, &ac)

	serverAction := func(use, short, action, done string) *cobra.Command {
		c := &cobra.Command{
			Use: use + " GROUP SERVER", Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				path := "/api/v1/groups/" + url.PathEscape(args[0]) + "/servers/" + url.PathEscape(args[1]) + "/" + action
				if err := ac.do(http.MethodPost, path, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: %s\n", args[0], args[1], done)
				return nil
			},
		}
		addAdminFlags(c, &ac)
		return c
	}
	drain := serverAction("drain", "Take SERVER out of service: no new traffic, requests in flight finish, websockets closed after a grace period", "drain", "drained")
	undrain := serverAction("undrain", "Put a drained SERVER back in service", "undrain", "back in service")

	history := &cobra.Command{
		Use: "history GROUP", Short: "Show the recent switches of GROUP", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var h []failover.Switch
			if err := ac.do(http.MethodGet, "/api/v1/groups/"+url.PathEscape(args[0])+"/history", &h); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(w, h)
			}
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEPOCH\tFROM\tTO\tREASON\tBY")
			for _, sw := range h {
				from := sw.From
				if from == "" {
					from = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", sw.At.Local().Format("2006-01-02 15:04:05.000"), sw.Epoch, from, sw.To, sw.Reason, sw.By)
			}
			return tw.Flush()
		},
	}
	history.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	addAdminFlags(history, &ac)
	return []*cobra.Command{status, reload, failback, sw, drain, undrain, history}
}

// ANSI colours, used only when writing to a terminal.
const (
	plain  = "39"
	red    = "31"
	green  = "32"
	yellow = "33"
)

// colours returns a painter that colours text when w is a terminal and
// NO_COLOR is not set, and leaves it alone otherwise.
func colours(w io.Writer) func(colour, s string) string {
	plain := func(_, s string) string { return s }
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return plain
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return plain
	}
	return func(colour, s string) string { return "\x1b[" + colour + "m" + s + "\x1b[0m" }
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
