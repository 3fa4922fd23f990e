package haproxy

import (
	"slices"
	"strings"
	"testing"
)

// aclsOf defines named ACLs from "name fetch args..." lines.
func aclsOf(t *testing.T, defs ...string) *acls {
	t.Helper()
	a := newACLs()
	for _, d := range defs {
		w := strings.Fields(d)
		c, err := parseCriterion(w[1:])
		if err != nil {
			t.Fatalf("acl %s: %v", d, err)
		}
		a.byName[w[0]] = append(a.byName[w[0]], c)
	}
	return a
}

func TestConditions(t *testing.T) {
	a := aclsOf(t,
		"path_websocket path /websocket",
		"hdr_connection hdr(connection) -i upgrade",
		"hdr_upgrade hdr(upgrade) -i websocket",
		"host_shop hdr(host) -i shop.example.com www.shop.example.com:443",
		"host_shop req.hdr(Host),lower shop2.example.com",
		"is_ssl ssl_fc",
		"api path_beg /api",
	)
	for _, tc := range []struct {
		cond       string
		hosts      []string
		plain, tls bool
		guard      []string
		err        string
	}{
		{cond: "if !{ ssl_fc }", plain: true},
		{cond: "unless { ssl_fc }", plain: true},
		{cond: "if ! is_ssl", plain: true},
		{cond: "if { ssl_fc }", tls: true},
		{cond: "unless !is_ssl", tls: true},
		{cond: "if !{ ssl_fc } api"},
		{cond: "if { hdr(Host) -i master.domain.com }", hosts: []string{"master.domain.com"}},
		{cond: "if host_shop", hosts: []string{"shop.example.com", "www.shop.example.com", "shop2.example.com"}},
		{cond: "if host_shop || { hdr(host) -i a.example }", hosts: []string{"shop.example.com", "www.shop.example.com", "shop2.example.com", "a.example"}},
		{cond: "if host_shop api"},
		{cond: "unless host_shop"},
		{cond: "if { hdr_end(host) -i .example.com }"},
		{cond: "if { hdr(host) -m beg www. }"},
		{cond: "if path_websocket !hdr_upgrade OR path_websocket !hdr_connection", guard: []string{"/websocket"}},
		{cond: "if path_websocket !hdr_connection || path_websocket !hdr_upgrade", guard: []string{"/websocket"}},
		{cond: "if { path_beg /ws } !{ hdr(upgrade) -i websocket } or { path_beg /ws } !{ hdr(connection) -i upgrade }", guard: []string{"/ws"}},
		{cond: "if path_websocket !hdr_upgrade"},
		{cond: "if path_websocket !hdr_upgrade !hdr_connection"},
		{cond: "if path_websocket !hdr_upgrade OR api !hdr_connection"},
		{cond: "if path_websocket hdr_upgrade OR path_websocket hdr_connection"},
		{cond: "if TRUE"},
		{cond: "if nosuch", err: `no ACL named "nosuch"`},
		{cond: "if { path /a", err: "not closed"},
		{cond: "if {path /a }", err: "a blank after {"},
		{cond: "if a OR", err: `no ACL named "a"`},
		{cond: "if host_shop OR", err: "ends with an OR"},
		{cond: "if", err: "without a condition"},
		{cond: "if { hdr(host) -x a }", err: "unknown ACL flag -x"},
	} {
		t.Run(tc.cond, func(t *testing.T) {
			c, err := a.parseCondition(strings.Fields(tc.cond))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hosts, _ := c.hosts()
			guard, _ := c.websocketGuard()
			if !slices.Equal(hosts, tc.hosts) || c.plainHTTP() != tc.plain || c.tls() != tc.tls || !slices.Equal(guard, tc.guard) {
				t.Errorf("hosts %q plain %v tls %v guard %q; want %q %v %v %q", hosts, c.plainHTTP(), c.tls(), guard, tc.hosts, tc.plain, tc.tls, tc.guard)
			}
		})
	}
}
