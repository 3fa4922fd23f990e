package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/buildinfo"
)

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tandem's version, commit, date and the Go toolchain it was built with",
		Args:  usage(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), buildinfo.Get().Text(cmd.Root().Name()))
			return nil
		},
	}
}

// setVersionFlag makes `NAME --version` answer what `NAME version` does.
func setVersionFlag(root *cobra.Command) {
	bi := buildinfo.Get()
	root.Version = bi.Version
	root.SetVersionTemplate(bi.Text(root.Name()))
}
