package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
			var wg sync.WaitGroup
			defer wg.Wait()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for _, inst := range []struct{ name, addr string }{{"master", master}, {"failover", backup}} {
				wg.Go(func() {
					// "SUBCOMMAND --name NAME" first: the kill command below matches it.
					a := append([]string{args[0], "--name", inst.name, "--addr", inst.addr}, args[1:]...)
					superviseDemoApp(ctx, inst.name, a, restart, log)
				})
			}
			// Start the gateway once both instances are ready (migrated,
			// seeded), so that the master is active from the first request.
			waitReady(ctx, 15*time.Second, master, backup)
			out := cmd.OutOrStdout()
			return runGateway(ctx, cfg, path, log, func(gw *gateway.Gateway, adminAddr string) {
				login := "the page says which instance served it"
				if appName == "taskboard" {
					login = fmt.Sprintf("log in as alice or bob, password %s", demoPassword)
				}
				fmt.Fprintf(out, `
  tandem demo is running.

  Open      http://%s/            (%s)
  Status    tandem status --admin http://%s
  Config    %s

  Kill the master and keep working: the page switches to the failover
  without a reload or a new login, and no change is lost:
      pkill -KILL -f '%s --name master'
  The demo restarts a killed instance after %v, as Kubernetes would; traffic
  returns to the master once it has been healthy for 5s (failback: auto, after: 5s).
  Ctrl-C stops everything.

`, gw.Addr("http"), login, adminAddr, path, args[0], restart)
			})
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "gateway address")
	c.Flags().StringVar(&admin, "admin", "127.0.0.1:9901", "admin API address")
	c.Flags().StringVar(&master, "master", "127.0.0.1:9081", "master instance address")
	c.Flags().StringVar(&backup, "failover", "127.0.0.1:9082", "failover instance address")
	c.Flags().StringVar(&appName, "app", "taskboard", "the app: taskboard (the reference app on appkit) or hello (a minimal backend)")
	c.Flags().StringVar(&db, "db", "", "task board database: a postgres:// URL (default: an SQLite file in the demo's directory)")
	c.Flags().DurationVar(&restart, "restart-after", 10*time.Second, "restart a killed instance after this long")
	return c
}

// superviseDemoApp runs one demo instance as a child process (so it can be
// killed on its own) and restarts it after it dies, until ctx ends.
func superviseDemoApp(ctx context.Context, name string, args []string, restart time.Duration, log *slog.Logger) {
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
