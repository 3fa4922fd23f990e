package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRoleFromChecks: an app on appkit learns its role from the gateway's
// health checks (X-Tandem-Role, with the epoch): with no request through
// the gateway at all, the master says active and the failover standby,
// the master still says active after idling longer than appkit's traffic
// window (5s), and a switch moves the roles with no traffic either.
func TestRoleFromChecks(t *testing.T) {
	keys := boardKeys(t)
	dsn := filepath.Join(t.TempDir(), "board.db")
	master := startBoard(t, "master", dsn, keys, 200)
	failover := startBoard(t, "failover", dsn, keys, 200)
	g := startGateway(t, gwConfig(master, failover)+boardHealth)
	g.waitActive(t, "master", 5*time.Second)
	roles := func(m, f string, within time.Duration, when string) {
		t.Helper()
		if !untilTrue(within, func() bool { return boardRole(master) == m && boardRole(failover) == f }) {
			t.Errorf("%s: master says %s, failover %s; want %s, %s", when, boardRole(master), boardRole(failover), m, f)
		}
	}
	roles("active", "standby", 2*time.Second, "no traffic yet")
	time.Sleep(6 * time.Second)
	roles("active", "standby", 0, "idle for 6s")
	if out, code := g.cli("switch", "app", "failover"); code != 0 || !strings.Contains(out, "switched to failover") {
		t.Fatalf("tandem switch: exit %d: %s", code, out)
	}
	roles("standby", "active", 2*time.Second, "after a switch with no traffic")
}
