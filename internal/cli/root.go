// Package cli holds tandem's command line, shared by cmd/tandem and
// cmd/kubectl-tandem. main owns signals and exit codes; commands return errors.
package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/config"
)

// Exit codes (README.md, "The CLI"). An action whose outcome was already
// in effect (switch to the active server, a second drain) is a success.
const (
	ExitOK     = 0 // done, or nothing to do
	ExitError  = 1 // could not ask: bad usage, admin API unreachable, an answer that is not the API's
	ExitConfig = 2 // the config file is refused
	// ExitRefused: the gateway refused the request (no such group or
	// server, server not available, bad token, reload refused).
	ExitRefused = 3
)

// ExitError carries a process exit code with an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the exit code for an error returned by a command.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return ExitError
}

// NewRoot returns the root command named name.
func NewRoot(name string) *cobra.Command {
	root := &cobra.Command{
		Use:           name,
		Short:         "tandem keeps a stateful web app on one active instance with a warm failover",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if name == "kubectl-tandem" {
		// As the user types it: usage lines and help say "kubectl tandem".
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl tandem"}
	}
	setVersionFlag(root)
	root.AddCommand(gatewayCmd(), checkCmd(), importCmd(), versionCmd(), demoCmd(), demoAppCmd(), taskboardCmd())
	root.AddCommand(adminCmds()...)
	root.AddCommand(kubeCmds()...)
	return root
}

// loadConfig loads path or returns an error listing every problem.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if n := len(config.Problems(err)); n > 0 {
		return nil, &exitError{code: ExitConfig, err: fmt.Errorf("config refused, %d problem(s):\n%w", n, err)}
	}
	if err != nil {
		return nil, &exitError{code: ExitConfig, err: err}
	}
	return cfg, nil
}

func newLogger(format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func checkCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a config file without starting anything",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d listeners, %d groups)\n", path, len(cfg.Listeners), len(cfg.Groups))
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "tandem.yaml", "config file")
	return c
}
