package cli

import (
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/examples/taskboard"
)

// taskboardCmd runs one instance of the reference task board
// (examples/taskboard): `tandem demo` starts two, the tests start them as
// real processes.
func taskboardCmd() *cobra.Command {
	var o taskboard.Options
	gofs := flag.NewFlagSet("taskboard", flag.ContinueOnError)
	o.Register(gofs)
	c := &cobra.Command{
		Use:    "taskboard --name NAME --addr HOST:PORT --db DSN --session-keys FILE",
		Short:  "Run one instance of the reference task board (used by demo and tests)",
		Hidden: true,
		Args:   usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.Run(ctx, newLogger("text", "info"))
		},
	}
	c.Flags().AddGoFlagSet(gofs)
	return c
}
