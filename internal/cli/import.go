package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/haproxy"
)

func importCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "import",
		Short: "Translate another proxy's config into a tandem config",
	}
	c.AddCommand(importHAProxyCmd())
	return c
}

func importHAProxyCmd() *cobra.Command {
	var opt haproxy.Options
	var strict, verbose bool
	c := &cobra.Command{
		Use:   "haproxy FILE",
		Short: "Translate an HAProxy config (FILE, or - for stdin) into a tandem config on stdout; what is not translated goes to stderr with its line",
		Long: `Translate an HAProxy config into a tandem config, printed on stdout. Every directive is
translated or listed on stderr as FILE:LINE: not translated: why; warnings say where the result
differs from HAProxy, or where a value kept as written is dangerous (a check interval that takes
a minute to notice a dead master). The result passes tandem check.

Exit codes: 0 translated (warnings and lines not translated allowed; with --strict, none not
translated); 2 the file cannot be translated into a working config (nothing on stdout);
1 bad usage or an unreadable file.`,
		Args: usage(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
				file = "stdin"
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return &exitError{code: ExitError, err: fmt.Errorf("read HAProxy config: %w", err)}
			}
			res, err := haproxy.Translate(file, data, opt)
			stderr := cmd.ErrOrStderr()
			skipped, warnings := 0, 0
			for _, n := range res.Notes {
				switch n.Kind {
				case haproxy.Skipped:
					skipped++
				case haproxy.Warning:
					warnings++
				}
				fmt.Fprintln(stderr, n)
			}
			if err != nil {
				return &exitError{code: ExitConfig, err: err}
			}
			if verbose || len(res.Notes) > 0 {
				fmt.Fprintf(stderr, "%s: %d of %d directives translated; %d note(s) not translated, %d warning(s)\n",
					file, res.Translated, res.Directives, skipped, warnings)
			}
			if strict && skipped > 0 {
				return &exitError{code: ExitConfig, err: errors.New("--strict: some directives are not translated (listed above)")}
			}
			_, err = cmd.OutOrStdout().Write(res.YAML)
			return err
		},
	}
	c.Flags().StringVar(&opt.HTTP, "http", "", "for a file without frontends: a plain HTTP listener (host:port) for its one backend")
	c.Flags().StringVar(&opt.HTTPS, "https", "", "for a file without frontends: an HTTPS listener (host:port) for its one backend; needs --crt")
	c.Flags().StringVar(&opt.Crt, "crt", "", "with --https: the certificate chain and key, one PEM file (HAProxy's crt)")
	c.Flags().BoolVar(&strict, "strict", false, "exit 2, printing nothing, when any directive is not translated")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the summary line even when there is nothing to report")
	return c
}
