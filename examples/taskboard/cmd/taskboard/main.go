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
	if err := o.Run(ctx, log); err != nil {
		fmt.Fprintln(os.Stderr, "taskboard:", err)
		os.Exit(1)
	}
}
