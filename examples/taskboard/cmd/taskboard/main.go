// Command taskboard runs one instance of the reference task board (also
// available as `tandem taskboard`). Run two behind tandem with the same
// --db and --session-keys.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tandemproxy/tandem/examples/taskboard"
)

func main() {
	var o taskboard.Options
	o.Register(flag.CommandLine)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o, log); err != nil {
		fmt.Fprintln(os.Stderr, "taskboard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *taskboard.Options, log *slog.Logger) error {
	cfg, err := o.Config(log)
	if err != nil {
		return err
	}
	app, err := taskboard.New(cfg)
	if err != nil {
		return err
	}
	return app.Run(ctx)
}
