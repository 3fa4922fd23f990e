package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/failover"
)

// adminClient talks to a gateway's admin API.
type adminClient struct {
	base  string
	token string
	as    string // who asks, for the gateway's log and history
}

func addAdminFlags(c *cobra.Command, ac *adminClient) {
	def := os.Getenv("TANDEM_ADMIN")
	if def == "" {
		def = "127.0.0.1:9901"
	}
	c.Flags().StringVar(&ac.base, "admin", def, "admin API: host:port as admin.address is written, or a URL (env TANDEM_ADMIN)")
	c.Flags().StringVar(&ac.token, "token", "", "admin API token (env TANDEM_TOKEN)")
	c.Flags().StringVar(&ac.as, "as", "", "who asks, written in the gateway's log and switch history (default: $USER, else the OS user)")
}

// adminURL turns --admin into a base URL: host:port (how admin.address is
// written in the config) or an http(s) URL.
func adminURL(s string) (string, error) {
	raw := strings.TrimSpace(s)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", &exitError{code: ExitError, err: fmt.Errorf("--admin %q: want host:port (as admin.address in the config) or http(s)://host:port", s)}
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// operator names who runs the CLI: --as, else $USER, else the OS user.
func operator(as string) string {
	if as != "" {
		return as
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// actionResult is the admin API's answer to an action.
type actionResult struct {
	Result  string `json:"result"` // admin.ResultOK or admin.ResultNothingToDo
	Message string `json:"message,omitempty"`
}

func (ac *adminClient) do(method, path string, out any) error {
	base, err := adminURL(ac.base)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, base+path, nil)
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
	req.Header.Set("X-Tandem-User", operator(ac.as)+" (cli)")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s is unreachable: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &exitError{code: ExitRefused, err: fmt.Errorf("refused (%d): %s", resp.StatusCode, msg)}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("admin API answered something else than JSON: %w", err)
		}
	}
	return nil
}

// usage is a command's positional arguments check that names them.
func usage(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		names := strings.Fields(strings.TrimPrefix(cmd.Use, cmd.Name()))
		want := "no argument"
		if n > 0 {
			want = fmt.Sprintf("%d argument(s): %s", n, strings.Join(names, " "))
		}
		return &exitError{code: ExitError, err: fmt.Errorf("%s takes %s, got %d\nusage: %s", cmd.Name(), want, len(args), cmd.UseLine())}
	}
}

func adminCmds() []*cobra.Command {
	var ac adminClient
	var output string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show every group: servers, health, active server, what holds it; the replicas' coordination",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output, statusFormats); err != nil {
				return err
			}
			var st admin.State
			if err := ac.do(http.MethodGet, "/api/v1/state", &st); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" || output == "yaml" {
				return printStructured(w, output, st)
			}
			return renderStatus(w, st, output == "wide", time.Now(), colours(w))
		},
	}
	status.Flags().StringVarP(&output, "output", "o", "table", "table, wide (addresses, last checks, websockets), json or yaml")
	addAdminFlags(status, &ac)

	// action posts path and says what happened; then, if set, reports the
	// group's state after a done action.
	action := func(cmd *cobra.Command, path, group, done string, after func(g admin.GroupState) string) error {
		var res actionResult
		if err := ac.do(http.MethodPost, path, &res); err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if res.Result == admin.ResultNothingToDo {
			fmt.Fprintf(w, "nothing to do: %s\n", res.Message)
			return nil
		}
		if after != nil {
			var st admin.State
			if err := ac.do(http.MethodGet, "/api/v1/state", &st); err == nil {
				for _, g := range st.Groups {
					if g.Name == group {
						done = after(g)
					}
				}
			}
		}
		fmt.Fprintln(w, done)
		return nil
	}
	activeNow := func(verb string) func(g admin.GroupState) string {
		return func(g admin.GroupState) string {
			switch {
			case g.Revoking:
				return fmt.Sprintf("%s: %s: switch under way (epoch %d)", g.Name, verb, g.Epoch)
			case g.Active == "":
				return fmt.Sprintf("%s: %s: no server is active now", g.Name, verb)
			}
			return fmt.Sprintf("%s: %s to %s (epoch %d)", g.Name, verb, g.Active, g.Epoch)
		}
	}

	reload := &cobra.Command{
		Use: "reload", Short: "Reload the gateway's config file (a bad file is refused)", Args: usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return action(cmd, "/api/v1/reload", "", "reloaded", nil)
		},
	}
	addAdminFlags(reload, &ac)

	failback := &cobra.Command{
		Use: "failback GROUP", Short: "Return GROUP to its preferred available server now", Args: usage(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return action(cmd, "/api/v1/groups/"+url.PathEscape(args[0])+"/failback", args[0], args[0]+": failed back", activeNow("failed back"))
		},
	}
	addAdminFlags(failback, &ac)

	sw := &cobra.Command{
		Use: "switch GROUP SERVER", Short: "Make SERVER the active server of GROUP and hold it there", Args: usage(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return action(cmd, "/api/v1/groups/"+url.PathEscape(args[0])+"/switch/"+url.PathEscape(args[1]), args[0],
				fmt.Sprintf("%s: switched to %s", args[0], args[1]), activeNow("switched"))
		},
	}
	addAdminFlags(sw, &ac)

	serverAction := func(use, short, act, done string) *cobra.Command {
		c := &cobra.Command{
			Use: use + " GROUP SERVER", Short: short, Args: usage(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				path := "/api/v1/groups/" + url.PathEscape(args[0]) + "/servers/" + url.PathEscape(args[1]) + "/" + act
				return action(cmd, path, args[0], fmt.Sprintf("%s/%s: %s", args[0], args[1], done), nil)
			},
		}
		addAdminFlags(c, &ac)
		return c
	}
	drain := serverAction("drain", "Take SERVER out of service: no new traffic, requests in flight finish, websockets closed after a grace period", "drain", "drained")
	undrain := serverAction("undrain", "Put a drained SERVER back in service", "undrain", "back in service")

	var historyOutput string
	history := &cobra.Command{
		Use: "history GROUP", Short: "Show the recent switches of GROUP", Args: usage(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(historyOutput, historyFormats); err != nil {
				return err
			}
			var h []failover.Switch
			if err := ac.do(http.MethodGet, "/api/v1/groups/"+url.PathEscape(args[0])+"/history", &h); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if historyOutput != "table" {
				return printStructured(w, historyOutput, h)
			}
			return renderHistory(w, h, time.Local)
		},
	}
	history.Flags().StringVarP(&historyOutput, "output", "o", "table", "table, json or yaml")
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
