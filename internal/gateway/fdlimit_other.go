//go:build !unix

package gateway

import (
	"log/slog"

	"github.com/tandemproxy/tandem/internal/config"
)

// fitFDs has no file descriptor limit to check on this system.
func fitFDs(lim config.Limits, _ int, _ *slog.Logger) config.Limits { return lim }
