//go:build unix

package gateway

import (
	"log/slog"
	"syscall"

	"github.com/tandemproxy/tandem/internal/config"
)

// fdReserve is what the gateway needs beside its proxied connections:
// listeners, admin API, health checks, epoll, logs.
const fdReserve = 128

// fitFDs checks the file descriptor limit (RLIMIT_NOFILE) against what
// limits.maxConnections needs on every listener (two per connection: the
// client's and the server's) and raises the soft limit towards the hard
// one when that is short. If even the hard limit is short, it lowers the
// effective bound so that the gateway never runs out of fds (which would
// look like every server failing) and warns, naming the limit, as
// HAProxy does with maxconn.
func fitFDs(lim config.Limits, listeners int, log *slog.Logger) config.Limits {
	if listeners < 1 {
		return lim
	}
	need := uint64(lim.MaxConnections)*2*uint64(listeners) + fdReserve
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the file descriptor limit (RLIMIT_NOFILE)", "error", err)
		return lim
	}
	if rl.Cur >= need {
		return lim
	}
	if want := min(need, rl.Max); want > rl.Cur {
		raised := syscall.Rlimit{Cur: want, Max: rl.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			log.Info("raised the file descriptor soft limit (RLIMIT_NOFILE)", "from", rl.Cur, "to", want, "need", need)
			rl.Cur = want
		}
	}
	if rl.Cur >= need {
		return lim
	}
	bound := 1
	if rl.Cur > fdReserve+2*uint64(listeners) {
		bound = int((rl.Cur - fdReserve) / (2 * uint64(listeners)))
	}
	log.Warn("the file descriptor limit (RLIMIT_NOFILE) is below what limits.maxConnections needs: lowering it; raise the limit (ulimit -n, systemd LimitNOFILE) to keep it",
		"soft", rl.Cur, "hard", rl.Max, "need", need, "maxConnections", lim.MaxConnections, "listeners", listeners,
		"effectiveMaxConnections", bound)
	lim.MaxConnections = bound
	return lim
}
