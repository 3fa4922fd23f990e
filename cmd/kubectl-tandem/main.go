// Command kubectl-tandem is tandem's CLI named for kubectl's plugin
// discovery: `kubectl tandem status` runs `tandem status`.
package main

import (
	"fmt"
	"os"

	"github.com/tandemproxy/tandem/internal/cli"
)

func main() {
	if err := cli.NewRoot("kubectl-tandem").Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl-tandem:", err)
		os.Exit(cli.ExitCode(err))
	}
}
