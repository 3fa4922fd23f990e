package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/route"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("fd00::/8"),
}

// sent renders in as the gateway sends it to a server (outbound, then
// the writer) and reads that back as a server does.
func sent(t testing.TB, in *http.Request, prefixes []netip.Prefix) *http.Request {
	t.Helper()
	if in.URL == nil {
		in.URL = &url.URL{Path: "/"}
	}
	st := &reqState{table: &route.Table{Trusted: prefixes}, group: &route.Group{Cfg: &config.Group{}}}
	wr, err := outbound(in, st, false)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.release()
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	if err := wr.Write(bw); err != nil {
		t.Fatal(err)
	}
	out, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("the request written does not parse (%v):\n%q", err, b.Bytes())
	}
	return out
}

// TestForwardedHeaders: the forwarding headers of the request sent to a
// server, from the client's own (trusted peers only) and this hop.
func TestForwardedHeaders(t *testing.T) {
	type hdr = map[string][]string
	forged := hdr{
		"X-Forwarded-For":   {"1.2.3.4"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"https"},
		"Forwarded":         {"for=1.2.3.4;proto=https"},
	}
	tests := []struct {
		name   string
		remote string
		host   string
		tls    bool
		in     hdr
		want   hdr
	}{
		{
			name:   "untrusted peer without headers",
			remote: "203.0.113.7:51000",
			host:   "app.example.com",
			want: hdr{
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=203.0.113.7;host="app.example.com";proto=http`},
			},
		},
		{
			name:   "untrusted peer: forged headers are replaced",
			remote: "203.0.113.7:51000",
			host:   "app.example.com",
			in:     forged,
			want: hdr{
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=203.0.113.7;host="app.example.com";proto=http`},
			},
		},
		{
			name:   "untrusted peer: several forged lines are replaced",
			remote: "203.0.113.7:51000",
			host:   "app.example.com",
			in:     hdr{"X-Forwarded-For": {"1.1.1.1", "2.2.2.2"}, "Forwarded": {"for=1.1.1.1", "for=2.2.2.2"}},
			want: hdr{
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=203.0.113.7;host="app.example.com";proto=http`},
			},
		},
		{
			name:   "untrusted peer over TLS",
			remote: "203.0.113.7:51000",
			host:   "app.example.com:8443",
			tls:    true,
			in:     hdr{"X-Forwarded-Proto": {"http"}},
			want: hdr{
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Host":  {"app.example.com:8443"},
				"X-Forwarded-Proto": {"https"},
				"Forwarded":         {`for=203.0.113.7;host="app.example.com:8443";proto=https`},
			},
		},
		{
			name:   "trusted peer: values are appended to and kept",
			remote: "10.1.2.3:40000",
			host:   "app.internal",
			in:     forged,
			want: hdr{
				"X-Forwarded-For":   {"1.2.3.4, 10.1.2.3"},
				"X-Forwarded-Host":  {"evil.example"},
				"X-Forwarded-Proto": {"https"},
				"Forwarded":         {`for=1.2.3.4;proto=https, for=10.1.2.3;host="app.internal";proto=http`},
			},
		},
		{
			name:   "trusted peer: several lines are joined",
			remote: "192.0.2.10:40000",
			host:   "app.example.com",
			in: hdr{
				"X-Forwarded-For": {"198.51.100.1, 198.51.100.2", "198.51.100.3"},
				"Forwarded":       {"for=198.51.100.1", "for=198.51.100.3"},
			},
			want: hdr{
				"X-Forwarded-For":   {"198.51.100.1, 198.51.100.2, 198.51.100.3, 192.0.2.10"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=198.51.100.1, for=198.51.100.3, for=192.0.2.10;host="app.example.com";proto=http`},
			},
		},
		{
			name:   "trusted peer without headers",
			remote: "10.9.9.9:1",
			host:   "app.example.com",
			tls:    true,
			want: hdr{
				"X-Forwarded-For":   {"10.9.9.9"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"https"},
				"Forwarded":         {`for=10.9.9.9;host="app.example.com";proto=https`},
			},
		},
		{
			name:   "untrusted IPv6 peer is quoted in Forwarded",
			remote: "[2001:db8::1]:443",
			host:   "app.example.com",
			in:     hdr{"X-Forwarded-For": {"::1"}},
			want: hdr{
				"X-Forwarded-For":   {"2001:db8::1"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for="[2001:db8::1]";host="app.example.com";proto=http`},
			},
		},
		{
			name:   "trusted IPv6 peer",
			remote: "[fd00::5]:9000",
			host:   "app.example.com",
			in:     hdr{"X-Forwarded-For": {"2001:db8::7"}, "Forwarded": {`for="[2001:db8::7]"`}},
			want: hdr{
				"X-Forwarded-For":   {"2001:db8::7, fd00::5"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for="[2001:db8::7]", for="[fd00::5]";host="app.example.com";proto=http`},
			},
		},
		{
			name:   "IPv4-mapped IPv6 peer is unmapped and trusted by its IPv4 prefix",
			remote: "[::ffff:192.0.2.1]:80",
			host:   "app.example.com",
			in:     hdr{"X-Forwarded-For": {"198.51.100.9"}},
			want: hdr{
				"X-Forwarded-For":   {"198.51.100.9, 192.0.2.1"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=192.0.2.1;host="app.example.com";proto=http`},
			},
		},
		{
			name:   "IPv6 loopback peer is not trusted by default",
			remote: "[::1]:80",
			host:   "localhost:8080",
			in:     hdr{"X-Forwarded-Host": {"evil.example"}},
			want: hdr{
				"X-Forwarded-For":   {"::1"},
				"X-Forwarded-Host":  {"localhost:8080"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for="[::1]";host="localhost:8080";proto=http`},
			},
		},
		{
			name:   "other headers are left alone",
			remote: "203.0.113.7:1",
			host:   "app.example.com",
			in:     hdr{"X-Real-Ip": {"1.2.3.4"}, "Cookie": {"a=b"}},
			want: hdr{
				"X-Real-Ip":         {"1.2.3.4"},
				"Cookie":            {"a=b"},
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Host":  {"app.example.com"},
				"X-Forwarded-Proto": {"http"},
				"Forwarded":         {`for=203.0.113.7;host="app.example.com";proto=http`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &http.Request{Method: "GET", Host: tt.host, RemoteAddr: tt.remote, Header: http.Header{}}
			for k, vs := range tt.in {
				for _, v := range vs {
					in.Header.Add(k, v)
				}
			}
			if tt.tls {
				in.TLS = &tls.ConnectionState{}
			}
			inBefore := in.Header.Clone()
			out := sent(t, in, testTrusted)
			want := http.Header{}
			for k, vs := range tt.want {
				for _, v := range vs {
					want.Add(k, v)
				}
			}
			if !reflect.DeepEqual(out.Header, want) {
				t.Errorf("headers:\n got %v\nwant %v", out.Header, want)
			}
			if !reflect.DeepEqual(in.Header, inBefore) {
				t.Errorf("inbound headers changed: %v, were %v", in.Header, inBefore)
			}
		})
	}
}

// TestAppendQuoted: a host is a quoted-string in Forwarded (RFC 7239):
// quotes and backslashes escaped, control characters dropped. (The Host
// outbound sends has neither, but the rule stands on its own.)
func TestAppendQuoted(t *testing.T) {
	for in, want := range map[string]string{
		"app.example.com":   `"app.example.com"`,
		`we"ird\host`:       `"we\"ird\\host"`,
		"a\x00b\x7fc\td":    `"abcd"`,
		"":                  `""`,
		"[2001:db8::1]:443": `"[2001:db8::1]:443"`,
	} {
		if got := string(appendQuoted(nil, in)); got != want {
			t.Errorf("appendQuoted(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPeerAddr(t *testing.T) {
	tests := []struct {
		remote string
		want   string
	}{
		{"192.0.2.1:80", "192.0.2.1"},
		{"[2001:db8::1]:80", "2001:db8::1"},
		{"[::ffff:10.0.0.1]:80", "10.0.0.1"},
		{"[fe80::1%eth0]:80", "fe80::1%eth0"},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			if got := peerAddr(&http.Request{RemoteAddr: tt.remote}); got.String() != tt.want {
				t.Errorf("peerAddr(%q) = %v, want %s", tt.remote, got, tt.want)
			}
		})
	}
}

// validHost is net/http's check of a Host header (httpguts.ValidHostHeader,
// whose table is written out here, apart from the code under test).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !strings.ContainsRune("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&'()*+,-.:;=[]_~", rune(h[i])) {
			return false
		}
	}
	return true
}

// hasCRLF reports whether any value of h contains CR or LF.
func hasCRLF(h http.Header) bool {
	for _, vs := range h {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return true
			}
		}
	}
	return false
}

// validFieldValue reports whether a Go HTTP server would deliver v as a
// header value (no control characters but tab).
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

func FuzzForwarded(f *testing.F) {
	f.Add([]byte{203, 0, 113, 7}, uint16(51000), "app.example.com", "1.2.3.4", "evil", "https", "for=1.2.3.4", false, false)
	f.Add([]byte{10, 1, 2, 3}, uint16(1), "app.example.com:8443", "1.2.3.4, 5.6.7.8", "h", "http", `for="[::1]"`, true, true)
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(443), `we"ird\host`, "", "", "", "", true, false)
	f.Add(netip.MustParseAddr("fd00::1").AsSlice(), uint16(443), "h", "a,,b", "", "", ",", false, true)
	f.Add(netip.MustParseAddr("::ffff:192.0.2.1").AsSlice(), uint16(0), "", "\t", "\t", "\t", "\t", false, true)
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, host, xff, xfh, xfp, fwd string, isTLS, trustAll bool) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		for _, v := range []string{host, xff, xfh, xfp, fwd} {
			if !validFieldValue(v) {
				return // a server never hands such a request to the handler
			}
		}
		in := &http.Request{Method: "GET", Host: host, RemoteAddr: netip.AddrPortFrom(addr, port).String(), Header: http.Header{}}
		for k, v := range map[string]string{"X-Forwarded-For": xff, "X-Forwarded-Host": xfh, "X-Forwarded-Proto": xfp, "Forwarded": fwd} {
			if v != "" {
				in.Header.Set(k, v)
			}
		}
		if isTLS {
			in.TLS = &tls.ConnectionState{}
		}
		prefixes := testTrusted
		if trustAll {
			prefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}
		if !validHost(host) {
			st := &reqState{table: &route.Table{Trusted: prefixes}, group: &route.Group{Cfg: &config.Group{}}}
			if _, err := outbound(in, st, false); !errors.Is(err, errBadRequest) {
				t.Fatalf("Host %q sent (%v): net/http's Transport refuses it", host, err)
			}
			return
		}
		out := sent(t, in, prefixes)

		peer := addr.Unmap().String()
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
			if n := len(out.Header.Values(k)); n != 1 {
				t.Fatalf("%s has %d values: %q", k, n, out.Header.Values(k))
			}
		}
		got := out.Header.Get("X-Forwarded-For")
		if got != peer && !strings.HasSuffix(got, ", "+peer) {
			t.Errorf("X-Forwarded-For %q does not end with the peer %s", got, peer)
		}
		if !trusted(addr.Unmap(), prefixes) {
			if got != peer {
				t.Errorf("untrusted peer: X-Forwarded-For %q, want %s", got, peer)
			}
			// As a server reads it: without the spaces around the value.
			if want := strings.Trim(host, " \t"); out.Header.Get("X-Forwarded-Host") != want && want != "" {
				t.Errorf("untrusted peer: X-Forwarded-Host %q, want %q", out.Header.Get("X-Forwarded-Host"), want)
			}
		}
		proto := "proto=http"
		if isTLS {
			proto = "proto=https"
		}
		if fw := out.Header.Get("Forwarded"); !strings.HasSuffix(fw, proto) {
			t.Errorf("Forwarded %q does not end with this hop's %s", fw, proto)
		}
		if hasCRLF(out.Header) {
			t.Errorf("CR or LF in output headers: %q", out.Header)
		}
	})
}
