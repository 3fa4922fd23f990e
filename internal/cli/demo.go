package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/appkit"
	"github.com/tandemproxy/tandem/internal/demoapp"
	"github.com/tandemproxy/tandem/internal/gateway"
)

func demoAppCmd() *cobra.Command {
	var name, addr string
	c := &cobra.Command{
		Use:    "demoapp --name NAME --addr HOST:PORT",
		Short:  "Run one instance of the demo app (used by demo and tests)",
		Hidden: true,
		Args:   usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			app := &demoapp.App{Name: name}
			return app.Run(ctx, addr, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		},
	}
	c.Flags().StringVar(&name, "name", "app", "instance name shown on every page")
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:9081", "listen address")
	return c
}

const demoConfig = `# tandem demo: one group, a master and a failover, on loopback.
listeners:
  - {name: http, address: "%s"}
admin:
  address: "%s"
log: {format: text, level: info}
groups:
  - name: demo
    mode: failover
    servers:
      - {name: master, address: "%s"}
      - {name: failover, address: "%s", backup: true}
    health: {path: /status, expect: {status: 200, body: version}, interval: 1s, fastInterval: 250ms, timeout: 500ms, rise: 2, fall: 2}
    failback: {policy: auto, after: 5s}
    websocket: {paths: [/websocket], requireUpgrade: true, onSwitch: close}
    retry: {attempts: 3, perTryTimeout: 2s}
    exposeServer: true
`

// demoPassword is the seeded demo users' password: the demo listens on
// loopback only.
const demoPassword = "tandem-demo"

func demoCmd() *cobra.Command {
	var listen, admin, master, backup, appName, db string
	var restart time.Duration
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the gateway and two instances of the task board (master, failover) on loopback",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every port first, before anything starts and migrates.
			if err := portsFree([]demoPort{{listen, "--listen"}, {admin, "--admin"}, {master, "--master"}, {backup, "--failover"}}); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			dir, err := os.MkdirTemp("", "tandem-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "tandem.yaml")
			if err := os.WriteFile(path, fmt.Appendf(nil, demoConfig, listen, admin, master, backup), 0o600); err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			// Both instances get the same arguments but their name and
			// address: for the task board, one database and one session
			// key file, which is what makes a switch invisible.
			var args []string
			switch appName {
			case "taskboard":
				keys := filepath.Join(dir, "session-keys")
				if err := os.WriteFile(keys, []byte(appkit.GenerateKey()+"\n"), 0o600); err != nil {
					return err
				}
				if db == "" {
					// One SQLite file for both processes: WAL mode and a busy
					// timeout (appkit.Open) let them share it on one machine.
					db = filepath.Join(dir, "taskboard.db")
				}
				args = []string{"taskboard", "--db", db, "--session-keys", keys, "--seed", "alice:" + demoPassword + ",bob:" + demoPassword}
			case "hello":
				args = []string{"demoapp"}
			default:
				return &exitError{code: ExitConfig, err: fmt.Errorf("--app %q: want taskboard or hello", appName)}
			}
			log := newLogger("text", "info")
			var pids sync.Map // instance name -> PID of its process now
			var wg sync.WaitGroup
			defer wg.Wait()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for _, inst := range []struct{ name, addr string }{{"master", master}, {"failover", backup}} {
				wg.Go(func() {
					a := append([]string{args[0], "--name", inst.name, "--addr", inst.addr}, args[1:]...)
					superviseDemoApp(ctx, inst.name, a, restart, log, func(pid int) { pids.Store(inst.name, pid) })
				})
			}
			// Start the gateway once both instances are ready (migrated,
			// seeded), so that the master is active from the first request.
			waitReady(ctx, 15*time.Second, master, backup)
			out := cmd.OutOrStdout()
			self := selfCommand()
			return runGateway(ctx, cfg, path, log, func(gw *gateway.Gateway, adminAddr string) {
				login := "the page says which instance served it"
				if appName == "taskboard" {
					login = fmt.Sprintf("log in as alice or bob, password %s", demoPassword)
				}
				pid, _ := pids.Load("master")
				fmt.Fprintf(out, `
  tandem demo is running.

  Open      http://%s/            (%s)
  Status    http://%s/ or, in another terminal here:
                %s status --admin %s
                %s history demo --admin %s
  Config    %s

  Kill the master and keep working: the page switches to the failover
  without a reload or a new login, and no change is lost:
      kill -KILL %v
  (the master's PID; the demo logs the new PID of an instance it restarts).
  The demo restarts a killed instance after %v, as Kubernetes would; traffic
  returns to the master once it has been healthy for 5s (failback: auto, after: 5s).
  Ctrl-C stops everything.

`, gw.Addr("http"), login, adminAddr, self, adminAddr, self, adminAddr, path, pid, restart)
			})
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "gateway address (the page to open)")
	c.Flags().StringVar(&admin, "admin", "127.0.0.1:9901", "admin API and status page address")
	c.Flags().StringVar(&master, "master", "127.0.0.1:9081", "master instance address")
	c.Flags().StringVar(&backup, "failover", "127.0.0.1:9082", "failover instance address")
	c.Flags().StringVar(&appName, "app", "taskboard", "the app: taskboard (the reference app on appkit) or hello (a minimal backend)")
	c.Flags().StringVar(&db, "db", "", "task board database: a postgres:// URL (default: an SQLite file in the demo's directory)")
	c.Flags().DurationVar(&restart, "restart-after", 10*time.Second, "restart a killed instance after this long")
	return c
}

// demoPort is an address the demo listens on and the flag that sets it.
type demoPort struct{ addr, flag string }

// portsFree checks that every address can be listened on, and names the
// flag that picks another one for each that cannot.
func portsFree(ports []demoPort) error {
	var errs []error
	for _, p := range ports {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s is not free (%v): pick another with %s HOST:PORT", p.addr, errors.Unwrap(err), p.flag))
			continue
		}
		ln.Close()
	}
	if len(errs) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("demo: %w", errors.Join(errs...))}
	}
	return nil
}

// selfCommand is how the user runs this binary from where they stand: the
// name found on $PATH, "go run ./cmd/tandem" for a go run from the module's
// root, else the binary's own path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "tandem"
	}
	if p, err := exec.LookPath(filepath.Base(exe)); err == nil {
		if a, b := canonical(p), canonical(exe); a == b {
			return filepath.Base(exe)
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		if _, err := os.Stat(filepath.Join("cmd", "tandem", "main.go")); err == nil {
			return "go run ./cmd/tandem"
		}
	}
	return exe
}

func canonical(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	a, _ := filepath.Abs(p)
	return a
}

// superviseDemoApp runs one demo instance as a child process (so it can be
// killed on its own) and restarts it after it dies, until ctx ends; started
// hears the PID of each process it starts.
func superviseDemoApp(ctx context.Context, name string, args []string, restart time.Duration, log *slog.Logger, started func(pid int)) {
	exe, err := os.Executable()
	if err != nil {
		log.Error("cannot find own executable", "error", err)
		return
	}
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 6 * time.Second
		if err := cmd.Start(); err != nil {
			log.Error("demo instance did not start", "name", name, "error", err)
			return
		}
		started(cmd.Process.Pid)
		log.Info("demo instance started", "name", name, "pid", cmd.Process.Pid)
		err := cmd.Wait()
		if ctx.Err() != nil {
			return
		}
		log.Warn("demo instance exited; restarting it later", "name", name, "error", err, "restart_after", restart)
		select {
		case <-ctx.Done():
		case <-time.After(restart):
		}
	}
}

// waitReady polls each instance's /status until it answers 200 or d passes.
func waitReady(ctx context.Context, d time.Duration, addrs ...string) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for _, addr := range addrs {
		for ctx.Err() == nil {
			resp, err := c.Get("http://" + addr + "/status")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
