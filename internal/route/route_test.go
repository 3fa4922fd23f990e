package route_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tandemproxy/tandem/internal/backend"
	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/route"
)

const testConfig = `listeners: [{name: web, address: ":8080"}]
trustedProxies: [10.0.0.0/8, 192.168.1.1, "::1"]
groups:
  - name: sense
    hosts: [sense.example.com, master.example.com, failover.example.com, Mixed.Example.COM]
    servers:
      - {name: bak, address: "bak.local:80", backup: true}
      - {name: second, address: "second.local:80", priority: 1}
      - {name: first, address: "first.local:80"}
    pin:
      - {host: master.example.com, server: first}
      - {host: Failover.Example.com, server: bak, strict: true}
    failback: {policy: manual}
    websocket: {paths: [/websocket, /live/]}
  - name: stateless
    hosts: ["*.apps.example.com", apps.example.com]
    mode: roundrobin
    sticky: {cookie: TANDEM_SERVER}
    servers:
      - {name: x, address: "x.local:80"}
      - {name: y, address: "y.local:80"}
      - {name: z, address: "z.local:80"}
  - name: rest
    mode: roundrobin
    servers:
      - {name: r1, address: "r1.local:80", backup: true}
      - {name: r2, address: "r2.local:80"}
`

// fixture is a table built from testConfig, with running electors.
type fixture struct {
	table    *route.Table
	reg      *backend.Registry
	electors map[string]*failover.Elector
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	f := &fixture{reg: backend.NewRegistry(nil), electors: map[string]*failover.Elector{}}
	f.table = route.Build(cfg, f.reg, f.elector)
	for _, g := range f.table.Groups {
		if g.Elector != nil {
			g.Elector.SetView(g.View, "test")
		}
	}
	return f
}

func (f *fixture) elector(name string) *failover.Elector {
	if e, ok := f.electors[name]; ok {
		return e
	}
	e := failover.NewElector(name, nil)
	f.electors[name] = e
	return e
}

func names(servers []*backend.Server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.Name)
	}
	return out
}

func TestBuild(t *testing.T) {
	f := newFixture(t, testConfig)
	tests := []struct {
		group       string
		wantServers []string
		wantElector bool
	}{
		// Failover mode: non-backup servers by priority, then backups.
		{group: "sense", wantServers: []string{"first", "second", "bak"}, wantElector: true},
		// Round robin keeps file order, backups included.
		{group: "stateless", wantServers: []string{"x", "y", "z"}},
		{group: "rest", wantServers: []string{"r1", "r2"}},
	}
	for _, tt := range tests {
		t.Run(tt.group, func(t *testing.T) {
			g := f.table.Group(tt.group)
			if g == nil {
				t.Fatalf("no group %q", tt.group)
			}
			if got := names(g.Servers); !reflect.DeepEqual(got, tt.wantServers) {
				t.Errorf("servers %v, want %v", got, tt.wantServers)
			}
			if (g.Elector != nil) != tt.wantElector {
				t.Errorf("elector %v, want one: %v", g.Elector, tt.wantElector)
			}
			for _, s := range g.Servers {
				if g.Server(s.Name) != s {
					t.Errorf("Server(%q) does not return the group's server", s.Name)
				}
				if s.Group != tt.group {
					t.Errorf("server %s has group %q", s.Name, s.Group)
				}
			}
			if g.Server("nope") != nil {
				t.Errorf("Server(nope) is not nil")
			}
		})
	}
	if f.table.Group("nope") != nil {
		t.Errorf("Group(nope) is not nil")
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(f.table.Trusted, want) {
		t.Errorf("Trusted = %v, want %v", f.table.Trusted, want)
	}
}

func TestBuildKeepsServerState(t *testing.T) {
	f := newFixture(t, testConfig)
	first := f.table.Group("sense").Server("first")
	first.MarkDown("test")
	cfg, err := config.Parse("t.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	t2 := route.Build(cfg, f.reg, f.elector)
	again := t2.Group("sense").Server("first")
	if again != first {
		t.Fatalf("a rebuild made a new server for an unchanged one")
	}
	if again.Available() {
		t.Errorf("the server's down state was lost on rebuild")
	}
	if t2.Group("sense").Elector != f.table.Group("sense").Elector {
		t.Errorf("a rebuild made a new elector")
	}
}

func TestLookup(t *testing.T) {
	f := newFixture(t, testConfig)
	tests := []struct {
		host string
		want string
	}{
		{host: "sense.example.com", want: "sense"},
		{host: "sense.example.com:8443", want: "sense"},
		{host: "SENSE.Example.Com", want: "sense"},
		{host: "Sense.Example.Com:80", want: "sense"},
		{host: "sense.example.com.", want: "sense"},
		{host: "mixed.example.com", want: "sense"},
		{host: "master.example.com", want: "sense"},
		{host: "app1.apps.example.com", want: "stateless"},
		{host: "APP1.apps.example.com:8080", want: "stateless"},
		{host: "apps.example.com", want: "stateless"},
		// A wildcard matches one label only.
		{host: "a.b.apps.example.com", want: "rest"},
		{host: "example.com", want: "rest"},
		{host: "unknown.org", want: "rest"},
		{host: "", want: "rest"},
		{host: "127.0.0.1:8080", want: "rest"},
		{host: "[::1]:8080", want: "rest"},
		{host: "sense.example.com.evil.org", want: "rest"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			g := f.table.Lookup(tt.host)
			if g == nil || g.Name != tt.want {
				t.Errorf("Lookup(%q) = %v, want group %q", tt.host, g, tt.want)
			}
		})
	}
}

func TestLookupWithoutCatchAll(t *testing.T) {
	f := newFixture(t, `listeners: [{name: web, address: ":8080"}]
groups:
  - name: only
    hosts: [a.example.com, "*.b.example.com"]
    servers: [{name: s, address: "s.local:80"}]
`)
	for host, want := range map[string]bool{"a.example.com": true, "x.b.example.com": true, "b.example.com": false, "c.example.com": false} {
		if got := f.table.Lookup(host) != nil; got != want {
			t.Errorf("Lookup(%q) found a group: %v, want %v", host, got, want)
		}
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":       "example.com",
		"example.com:80":    "example.com",
		"example.com.":      "example.com",
		"EXAMPLE.com.:8443": "example.com",
		"[::1]:80":          "::1",
		"10.0.0.1":          "10.0.0.1",
		"":                  "",
	} {
		if got := route.HostOnly(in); got != want {
			t.Errorf("HostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPickFailover(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		down    []string
		tried   []string
		want    string
		pinned  bool
		wantErr error
	}{
		{name: "active server", host: "sense.example.com", want: "first"},
		{name: "active server for an unpinned host", host: "Sense.Example.com:443", want: "first"},
		{name: "active down: next in priority", host: "sense.example.com", down: []string{"first"}, want: "second"},
		{name: "two down: the backup", host: "sense.example.com", down: []string{"first", "second"}, want: "bak"},
		{name: "active tried: next", host: "sense.example.com", tried: []string{"first"}, want: "second"},
		{name: "tried and down skipped", host: "sense.example.com", down: []string{"second"}, tried: []string{"first"}, want: "bak"},
		{name: "all tried", host: "sense.example.com", tried: []string{"first", "second", "bak"}, wantErr: route.ErrNoServer},
		{name: "all down", host: "sense.example.com", down: []string{"first", "second", "bak"}, wantErr: route.ErrNoServer},
		{name: "pin", host: "master.example.com", want: "first", pinned: true},
		{name: "pin with port and case", host: "MASTER.example.com:8443", want: "first", pinned: true},
		{name: "strict pin to a backup", host: "failover.example.com", want: "bak", pinned: true},
		{name: "non-strict pin down: the active server", host: "master.example.com", down: []string{"first"}, want: "second"},
		{name: "non-strict pin tried: the next server", host: "master.example.com", tried: []string{"first"}, want: "second"},
		{name: "strict pin down", host: "failover.example.com", down: []string{"bak"}, wantErr: route.ErrNoServer},
		{name: "strict pin tried", host: "failover.example.com", tried: []string{"bak"}, wantErr: route.ErrNoServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testConfig)
			g := f.table.Group("sense")
			for _, d := range tt.down {
				g.Server(d).MarkDown("test")
			}
			var tried []*backend.Server
			for _, n := range tt.tried {
				tried = append(tried, g.Server(n))
			}
			c, err := g.Pick(context.Background(), tt.host, "", tried)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Pick = %v, %v; want %v", c, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			if c.Server.Name != tt.want || c.Pinned != tt.pinned {
				t.Errorf("Pick = %s (pinned %v), want %s (pinned %v)", c.Server.Name, c.Pinned, tt.want, tt.pinned)
			}
		})
	}
}

// TestPickFollowsElector checks that Pick sends traffic to the elector's
// active server, not merely the first available one.
func TestPickFollowsElector(t *testing.T) {
	f := newFixture(t, testConfig)
	g := f.table.Group("sense")
	first := g.Server("first")
	first.MarkDown("test")
	g.Elector.Evaluate("health")
	if g.Elector.Active() != "second" {
		t.Fatalf("elector chose %q, want second", g.Elector.Active())
	}
	// first recovers; failback is manual so second stays active.
	first.ReportCheck(backend.CheckResult{At: time.Now(), OK: true}, 1, 1)
	g.Elector.Evaluate("health")
	if g.Elector.Active() != "second" {
		t.Fatalf("elector failed back to %q under a manual policy", g.Elector.Active())
	}
	c, err := g.Pick(context.Background(), "sense.example.com", "", nil)
	if err != nil || c.Server.Name != "second" {
		t.Fatalf("Pick = %v, %v; want second (the active server)", c, err)
	}
	// The operator switches to the backup: Pick follows.
	if err := g.Elector.SwitchTo("bak", "test"); err != nil {
		t.Fatal(err)
	}
	if c, err := g.Pick(context.Background(), "sense.example.com", "", nil); err != nil || c.Server.Name != "bak" {
		t.Fatalf("Pick = %v, %v; want bak", c, err)
	}
	// A pin still wins over the active server.
	if c, err := g.Pick(context.Background(), "master.example.com", "", nil); err != nil || c.Server.Name != "first" || !c.Pinned {
		t.Fatalf("Pick(master) = %v, %v; want first, pinned", c, err)
	}
}

func TestPickRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		down []string
		want []string // servers that must each get a share
	}{
		{name: "all up", want: []string{"x", "y", "z"}},
		{name: "one down", down: []string{"y"}, want: []string{"x", "z"}},
		{name: "two down", down: []string{"x", "z"}, want: []string{"y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testConfig)
			g := f.table.Group("stateless")
			for _, d := range tt.down {
				g.Server(d).MarkDown("test")
			}
			const picks = 300
			counts := map[string]int{}
			for range picks {
				c, err := g.Pick(context.Background(), "a.apps.example.com", "", nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				if c.Pinned {
					t.Errorf("round robin pick marked pinned")
				}
				counts[c.Server.Name]++
			}
			for _, d := range tt.down {
				if counts[d] != 0 {
					t.Errorf("down server %s got %d requests", d, counts[d])
				}
			}
			for _, w := range tt.want {
				// Every available server gets a fair part: at least half its even share.
				if min := picks / len(tt.want) / 2; counts[w] < min {
					t.Errorf("server %s got %d of %d requests (counts %v), want at least %d", w, counts[w], picks, counts, min)
				}
			}
			if len(tt.down) == 0 {
				for _, w := range tt.want {
					if counts[w] != picks/3 {
						t.Errorf("with all up, %s got %d requests, want exactly %d (counts %v)", w, counts[w], picks/3, counts)
					}
				}
			}
		})
	}
}

func TestPickSticky(t *testing.T) {
	tests := []struct {
		name   string
		cookie string
		down   []string
		tried  []string
		want   string   // the server every pick must return, if any
		not    []string // servers no pick may return
	}{
		{name: "cookie honoured", cookie: route.CookieValue("stateless", "y"), want: "y"},
		{name: "cookie for another server", cookie: route.CookieValue("stateless", "z"), want: "z"},
		{name: "cookie server down", cookie: route.CookieValue("stateless", "y"), down: []string{"y"}, not: []string{"y"}},
		{name: "cookie server tried", cookie: route.CookieValue("stateless", "y"), tried: []string{"y"}, not: []string{"y"}},
		{name: "cookie of another group", cookie: route.CookieValue("sense", "y"), not: nil},
		{name: "unknown cookie", cookie: "garbage"},
		{name: "tried excluded without cookie", tried: []string{"x", "z"}, want: "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testConfig)
			g := f.table.Group("stateless")
			for _, d := range tt.down {
				g.Server(d).MarkDown("test")
			}
			var tried []*backend.Server
			for _, n := range tt.tried {
				tried = append(tried, g.Server(n))
			}
			seen := map[string]int{}
			for range 30 {
				c, err := g.Pick(context.Background(), "apps.example.com", tt.cookie, tried)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				seen[c.Server.Name]++
			}
			if tt.want != "" && seen[tt.want] != 30 {
				t.Errorf("picks %v, want all on %s", seen, tt.want)
			}
			for _, n := range tt.not {
				if seen[n] > 0 {
					t.Errorf("picks %v include %s", seen, n)
				}
			}
			if tt.want == "" && len(seen) < 2 {
				t.Errorf("picks %v: without a usable cookie, round robin should spread", seen)
			}
		})
	}
}

func TestCookieValue(t *testing.T) {
	a := route.CookieValue("g", "s1")
	if a != route.CookieValue("g", "s1") {
		t.Errorf("CookieValue is not stable")
	}
	if len(a) != 16 {
		t.Errorf("CookieValue = %q, want 16 hex digits", a)
	}
	for _, other := range []string{route.CookieValue("g", "s2"), route.CookieValue("g2", "s1"), route.CookieValue("gs", "1"), route.CookieValue("g\x00s", "1")} {
		if other == a {
			t.Errorf("CookieValue collides: %q", other)
		}
	}
	if a == "s1" || a == "g" {
		t.Errorf("CookieValue exposes the server name")
	}
}

func TestPickRoundRobinNoServer(t *testing.T) {
	tests := []struct {
		name  string
		down  []string
		tried []string
	}{
		{name: "all down", down: []string{"x", "y", "z"}},
		{name: "all tried", tried: []string{"x", "y", "z"}},
		{name: "down and tried", down: []string{"x"}, tried: []string{"y", "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testConfig)
			g := f.table.Group("stateless")
			for _, d := range tt.down {
				g.Server(d).MarkDown("test")
			}
			var tried []*backend.Server
			for _, n := range tt.tried {
				tried = append(tried, g.Server(n))
			}
			if c, err := g.Pick(context.Background(), "apps.example.com", route.CookieValue("stateless", "x"), tried); !errors.Is(err, route.ErrNoServer) {
				t.Errorf("Pick = %v, %v; want ErrNoServer", c, err)
			}
		})
	}
}

func TestGroupView(t *testing.T) {
	f := newFixture(t, `listeners: [{name: web, address: ":8080"}]
groups:
  - name: a
    hosts: [a.example.com]
    failback: {policy: manual}
    servers: [{name: m, address: "m.local:80"}, {name: f, address: "f.local:80", backup: true}]
  - name: b
    failback: {after: 10s}
    servers: [{name: f, address: "f.local:80", priority: 2}, {name: m, address: "m.local:80", priority: 1}]
`)
	tests := []struct {
		group string
		down  string
		want  []string
		pol   failover.Policy
	}{
		{group: "a", down: "f", want: []string{"m", "f"}, pol: failover.Policy{Manual: true}},
		{group: "b", down: "m", want: []string{"m", "f"}, pol: failover.Policy{After: 10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.group, func(t *testing.T) {
			g := f.table.Group(tt.group)
			g.Server(tt.down).MarkDown("test")
			cands, pol := g.View()
			var got []string
			for _, c := range cands {
				got = append(got, c.Name)
				if c.Up == (c.Name == tt.down) {
					t.Errorf("candidate %s Up = %v", c.Name, c.Up)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("candidates %v, want %v", got, tt.want)
			}
			if pol != tt.pol {
				t.Errorf("policy %+v, want %+v", pol, tt.pol)
			}
		})
	}
}

func TestIsWebsocketPath(t *testing.T) {
	f := newFixture(t, testConfig)
	g := f.table.Group("sense")
	tests := []struct {
		path string
		want bool
	}{
		{"/websocket", true},
		{"/websocket/", true},
		{"/websocket/room/1", true},
		{"/websocketx", false},
		{"/web", false},
		{"/", false},
		{"/live/", true},
		{"/live", false},
		{"/live/feed", true},
		{"/lively", false},
		{"/WEBSOCKET", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := g.IsWebsocketPath(tt.path); got != tt.want {
				t.Errorf("IsWebsocketPath(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	if f.table.Group("rest").IsWebsocketPath("/websocket") {
		t.Errorf("a group without websocket paths guards /websocket")
	}
}
