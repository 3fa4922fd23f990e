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

// Exit codes.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitConfig = 2
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
	root.AddCommand(gatewayCmd(), checkCmd(), demoCmd(), demoAppCmd(), taskboardCmd())
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
		Args:  cobra.NoArgs,
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
