package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tandem's version and the Go toolchain it was built with",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine(cmd.Root().Name()))
			return nil
		},
	}
}

// versionLine names the build: module version, VCS revision and the Go
// toolchain, which decides which known vulnerabilities the binary has.
func versionLine(name string) string {
	version, vcs := "(devel)", map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
	}
	line := name + " " + version
	if rev := vcs["vcs.revision"]; rev != "" {
		line += " " + rev[:min(12, len(rev))]
		if vcs["vcs.modified"] == "true" {
			line += "-dirty"
		}
	}
	return fmt.Sprintf("%s built with %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
