// Command tandem is the master/failover gateway for stateful web apps, its
// operations CLI, and a self-contained demo.
package main

import (
	"fmt"
	"os"

	"github.com/tandemproxy/tandem/internal/cli"
)

func main() {
	if err := cli.NewRoot("tandem").Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tandem:", err)
		os.Exit(cli.ExitCode(err))
	}
}
