package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/user"
	"strings"
	"sync"
	"testing"

	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/failover"
)

// fakeGateway answers the admin API as a gateway whose group app is on
// master: failback and a switch to master have nothing to do.
type fakeGateway struct {
	mu     sync.Mutex
	active string
	by     []string
}

func (f *fakeGateway) State() admin.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return admin.State{Groups: []admin.GroupState{{Name: "app", Mode: "failover", Active: f.active, Epoch: 4, Failback: "manual",
		Servers: []admin.ServerState{{Name: "master", State: "up"}, {Name: "failover", State: "up"}}}}}
}
func (f *fakeGateway) record(by string) { f.mu.Lock(); f.by = append(f.by, by); f.mu.Unlock() }
func (f *fakeGateway) Reload(by string) error {
	f.record(by)
	return nil
}
func (f *fakeGateway) Failback(group, by string) error {
	f.record(by)
	if group != "app" {
		return fmt.Errorf("%w: %q", admin.ErrNoSuchGroup, group)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active == "master" {
		return fmt.Errorf("%w: master is already the preferred available server", failover.ErrNothingToDo)
	}
	f.active = "master"
	return nil
}
func (f *fakeGateway) Switch(group, server, by string) error {
	f.record(by)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case server == "ghost":
		return fmt.Errorf("%w: %q", failover.ErrNoSuchServer, server)
	case server == f.active:
		return fmt.Errorf("%w: %s is already active", failover.ErrNothingToDo, server)
	}
	f.active = server
	return nil
}
func (f *fakeGateway) Drain(group, server, by string) error {
	f.record(by)
	return fmt.Errorf("%w: %s is already drained", admin.ErrConflict, server)
}
func (f *fakeGateway) Undrain(group, server, by string) error { f.record(by); return nil }
func (f *fakeGateway) History(string) ([]failover.Switch, error) {
	return []failover.Switch{}, nil
}
func (f *fakeGateway) Readiness() error { return nil }

// run runs the CLI with args and returns its output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot("tandem")
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		fmt.Fprintln(&out, "tandem:", err)
	}
	return out.String(), ExitCode(err)
}

func startFake(t *testing.T) (*fakeGateway, string) {
	t.Helper()
	f := &fakeGateway{active: "failover"}
	s, err := admin.New("127.0.0.1:0", "", f, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

// TestCLIActions: exit codes and messages an operator's runbook relies on.
func TestCLIActions(t *testing.T) {
	f, hostPort := startFake(t)
	t.Setenv("TANDEM_ADMIN", "")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"--admin host:port as in the config", []string{"status", "--admin", hostPort}, 0, "app: active failover, epoch 4"},
		{"--admin URL", []string{"status", "--admin", "http://" + hostPort + "/"}, 0, "app: active failover"},
		{"--admin nonsense", []string{"status", "--admin", "ftp://x"}, 1, `--admin "ftp://x": want host:port`},
		{"failback says to which server", []string{"failback", "app", "--admin", hostPort}, 0, "app: failed back to master (epoch 4)\n"},
		{"failback again: nothing to do, exit 0", []string{"failback", "app", "--admin", hostPort}, 0, "nothing to do: master is already the preferred available server\n"},
		{"switch to the active server: nothing to do", []string{"switch", "app", "master", "--admin", hostPort}, 0, "nothing to do: master is already active"},
		{"drain a drained server: nothing to do", []string{"drain", "app", "failover", "--admin", hostPort}, 0, "nothing to do: failover is already drained"},
		{"a real refusal: exit 3", []string{"switch", "app", "ghost", "--admin", hostPort}, ExitRefused, `refused (404): no such server: "ghost"`},
		{"no such group: exit 3", []string{"failback", "nogroup", "--admin", hostPort}, ExitRefused, "refused (404): no such group"},
		{"missing arguments are named", []string{"switch", "--admin", hostPort}, 1, "switch takes 2 argument(s): GROUP SERVER, got 0\nusage: tandem switch GROUP SERVER"},
		{"one argument short", []string{"drain", "app", "--admin", hostPort}, 1, "usage: tandem drain GROUP SERVER"},
		{"failback without its group", []string{"failback"}, 1, "usage: tandem failback GROUP"},
		{"status takes none", []string{"status", "extra"}, 1, "status takes no argument, got 1\nusage: tandem status"},
		{"status -o yaml", []string{"status", "-o", "yaml", "--admin", hostPort}, 0, "groups:\n  - name: app\n"},
		{"status -o wide", []string{"status", "-o", "wide", "--admin", hostPort}, 0, "GROUP  SERVER    ADDRESS  STATE  ROLE     WS  LAST CHECK"},
		{"status -o anything else is refused with the list", []string{"status", "-o", "xml", "--admin", hostPort}, 1, `-o "xml": want one of table, wide, json, yaml`},
		{"history -o wide is refused", []string{"history", "app", "-o", "wide", "--admin", hostPort}, 1, `-o "wide": want one of table, json, yaml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("tandem %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(tt.args, " "), code, out, tt.code, tt.want)
			}
		})
	}
	if n := len(f.by); n == 0 {
		t.Fatal("no action reached the gateway")
	}
}

// TestCLIWhoAsks: actions are attributed to --as, else $USER, else the
// OS user; never to nobody.
func TestCLIWhoAsks(t *testing.T) {
	f, hostPort := startFake(t)
	osUser, err := user.Current()
	if err != nil {
		t.Fatalf("no OS user to fall back on: %v", err)
	}
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"$USER", "alice", nil, "alice (cli) from 127.0.0.1:"},
		{"no $USER: the OS user", "", nil, osUser.Username + " (cli) from 127.0.0.1:"},
		{"--as wins", "alice", []string{"--as", "cron-nightly"}, "cron-nightly (cli) from 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("USER", tc.env)
			f.mu.Lock()
			f.by = nil
			f.mu.Unlock()
			if out, code := run(t, append([]string{"reload", "--admin", hostPort}, tc.args...)...); code != 0 {
				t.Fatalf("reload: exit %d: %s", code, out)
			}
			if len(f.by) != 1 || !strings.HasPrefix(f.by[0], tc.want) {
				t.Errorf("the gateway heard the action from %q, want %q", f.by, tc.want)
			}
		})
	}
}

// TestKubectlPluginUsage: as a kubectl plugin, usage names the command
// as the user types it.
func TestKubectlPluginUsage(t *testing.T) {
	root := NewRoot("kubectl-tandem")
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"switch", "app"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "usage: kubectl tandem switch GROUP SERVER") {
		t.Errorf("kubectl tandem switch app: %v, want the usage as kubectl tandem", err)
	}
}
