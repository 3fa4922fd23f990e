package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/admin"
	"github.com/tandemproxy/tandem/internal/buildinfo"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/gateway"
)

func gatewayCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "gateway -c FILE",
		Short: "Run the gateway (SIGHUP reloads the config, SIGTERM drains and stops)",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log.Format, cfg.Log.Level)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runGateway(ctx, cfg, path, log, nil)
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "tandem.yaml", "config file")
	return c
}

// runGateway runs the gateway and its admin API until ctx ends; SIGHUP
// reloads. ready, if not nil, receives the gateway once it listens.
func runGateway(ctx context.Context, cfg *config.Config, path string, log *slog.Logger, ready func(*gateway.Gateway, string)) error {
	if os.Getenv("GOGC") == "" {
		// A proxy's heap is small and short-lived: collecting less often
		// trades a little memory for CPU (GOGC overrides).
		debug.SetGCPercent(400)
	}
	log.Info("tandem starting", append(buildinfo.Get().LogAttrs(), "config", path)...)
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(cfg, path, log, reg)
	if err != nil {
		return &exitError{code: ExitConfig, err: err}
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	adm, err := admin.New(cfg.Admin.Address, cfg.Admin.TokenFile, gw, metrics, log)
	if err != nil {
		return &exitError{code: ExitConfig, err: err}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = gw.Run(ctx, cfg)
		cancel()
	})
	wg.Go(func() {
		errs[1] = adm.Run(ctx)
		if errs[1] != nil {
			cancel()
		}
	})
	go func() {
		var adminAddr string
		select {
		case adminAddr = <-adm.Addr:
		case <-ctx.Done():
			return
		}
		select {
		case <-gw.Ready:
			if ready != nil {
				ready(gw, adminAddr)
			}
		case <-ctx.Done():
			return
		}
		for {
			select {
			case <-hup:
				_ = gw.Reload("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}
