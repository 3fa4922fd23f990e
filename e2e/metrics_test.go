package e2e

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads the gateway's /metrics into "name{labels}" -> value.
func scrape(t *testing.T, g *gw) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// metricIs waits until the scraped metric equals want.
func metricIs(t *testing.T, g *gw, key string, want float64) {
	t.Helper()
	var got float64
	if !untilTrue(5*time.Second, func() bool { got = scrape(t, g)[key]; return got == want }) {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
}

// TestMetrics: the metrics follow servers failing and recovering, switches,
// requests, websockets and reloads.
func TestMetrics(t *testing.T) {
	master, backup := startApp(t, "master", ""), startApp(t, "failover", "")
	g := startGateway(t, gwConfig(master, backup)+healthCfg+wsCfg+"    failback: {policy: auto}\n")
	url := "http://" + g.addr + "/hello"

	m := scrape(t, g)
	for key, want := range map[string]float64{
		`tandem_server_up{group="app",server="master"}`:             1,
		`tandem_server_up{group="app",server="failover"}`:           1,
		`tandem_group_active_server{group="app",server="master"}`:   1,
		`tandem_group_active_server{group="app",server="failover"}`: 0,
		`tandem_switches_total{group="app",kind="start"}`:           1,
		`tandem_config_last_reload_successful`:                      1,
		`tandem_websockets_open{group="app",server="master"}`:       0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if m[`tandem_health_check_duration_seconds_count{group="app",server="master"}`] < 1 {
		t.Error("no health check recorded")
	}
	buildInfo := false
	for k := range m {
		buildInfo = buildInfo || strings.HasPrefix(k, "tandem_build_info{")
	}
	if !buildInfo {
		t.Error("tandem_build_info missing")
	}

	ws := dialAll(t, g.addr, 2)
	metricIs(t, g, `tandem_websockets_open{group="app",server="master"}`, 2)
	for range 5 {
		get(http.DefaultClient, url)
	}
	if v := scrape(t, g)[`tandem_requests_total{code="2xx",group="app",server="master"}`]; v < 5 {
		t.Errorf("requests to the master counted %v, want at least 5", v)
	}

	master.kill()
	for range 5 {
		get(http.DefaultClient, url)
	}
	<-ws[0].done
	<-ws[1].done
	m = scrape(t, g)
	for key, want := range map[string]float64{
		`tandem_server_up{group="app",server="master"}`:             0,
		`tandem_group_active_server{group="app",server="master"}`:   0,
		`tandem_group_active_server{group="app",server="failover"}`: 1,
		`tandem_switches_total{group="app",kind="down"}`:            1,
		`tandem_group_epoch{group="app"}`:                           2,
	} {
		if got := m[key]; got != want {
			t.Errorf("after the kill %s = %v, want %v", key, got, want)
		}
	}
	if m[`tandem_requests_total{code="2xx",group="app",server="failover"}`] < 5 {
		t.Error("requests to the failover not counted")
	}
	if s := m[`tandem_group_seconds_since_last_switch{group="app"}`]; s <= 0 || s > 5 {
		t.Errorf("seconds since last switch %v", s)
	}
	metricIs(t, g, `tandem_websockets_open{group="app",server="master"}`, 0)
	if !untilTrue(3*time.Second, func() bool {
		return scrape(t, g)[`tandem_health_check_failures_total{group="app",reason="refused",server="master"}`] >= 1
	}) {
		t.Error("refused health checks of the dead master not counted")
	}

	startApp(t, "master", master.addr)
	metricIs(t, g, `tandem_group_active_server{group="app",server="master"}`, 1)
	metricIs(t, g, `tandem_switches_total{group="app",kind="failback"}`, 1)
	metricIs(t, g, `tandem_server_up{group="app",server="master"}`, 1)

	if out, code := g.cli("reload"); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	metricIs(t, g, `tandem_config_reloads_total{result="success"}`, 1)
	writeConfig(t, g, "listeners: []\n")
	g.cli("reload")
	metricIs(t, g, `tandem_config_reloads_total{result="failure"}`, 1)
	metricIs(t, g, `tandem_config_last_reload_successful`, 0)
}

// TestAdminToken: with a token file the admin API refuses calls without the
// token (CLI exits non-zero and says so) and accepts the CLI with it; the
// token never appears in the logs.
func TestAdminToken(t *testing.T) {
	master := startApp(t, "master", "")
	dir := t.TempDir()
	const token = "s3cret-admin-token-0123456789"
	tokenFile := dir + "/token"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(gwConfig(master), "admin: {address: ADMIN}", "admin: {address: ADMIN, tokenFile: "+tokenFile+"}", 1)
	g := startGateway(t, cfg+healthCfg)

	if out, code := g.cli("status"); code == 0 || !strings.Contains(out, "401") {
		t.Errorf("status without token: exit %d %q, want a 401 refusal", code, out)
	}
	if out, code := g.cli("switch", "app", "master", "--token", "wrong"); code == 0 || !strings.Contains(out, "valid bearer token") {
		t.Errorf("switch with a wrong token: exit %d %q", code, out)
	}
	if out, code := g.cli("status", "--token", token); code != 0 || !strings.Contains(out, "master") {
		t.Errorf("status with the token: exit %d %q", code, out)
	}
	cmd := exec.Command(bin, "status", "--admin", "http://"+g.admin)
	cmd.Env = append(os.Environ(), "TANDEM_TOKEN="+token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("status with TANDEM_TOKEN: %v %s", err, out)
	}
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without token: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(g.out.String(), token) {
		t.Error("the admin token appears in the gateway's log")
	}
}
