package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// peerAddr returns the address of the TCP peer of r.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

func trusted(peer netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// setForwarded writes X-Forwarded-For/-Host/-Proto and Forwarded on out.
// The client's own values are kept (and appended to) only when the peer is
// a trusted proxy; otherwise they are replaced, so a client cannot forge
// its address. out must not carry the inbound values already.
func setForwarded(out, in *http.Request, prefixes []netip.Prefix) {
	setForwardedHeader(out.Header, in, prefixes)
}

// setForwardedHeader is setForwarded on a header of the outbound request.
// It runs on every request: keys are the canonical constants, used on the
// map directly, and the four values share one allocation.
func setForwardedHeader(h http.Header, in *http.Request, prefixes []netip.Prefix) {
	peer := peerAddr(in)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	ip := peer.String()
	xff, xfh, xfp, fwd := ip, in.Host, proto, ""
	if trusted(peer, prefixes) {
		if prior := strings.Join(in.Header["X-Forwarded-For"], ", "); strings.TrimSpace(prior) != "" {
			xff = prior + ", " + ip
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
			xfh = v[0]
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 && v[0] != "" {
			xfp = v[0]
		}
		if prior := in.Header["Forwarded"]; len(prior) > 0 {
			fwd = strings.Join(prior, ", ") + ", "
		}
	}
	vals := [4]string{xff, xfh, xfp, fwd + forwardedElement(peer, ip, in.Host, proto)}
	all := vals[:]
	h["X-Forwarded-For"] = all[0:1:1]
	h["X-Forwarded-Host"] = all[1:2:2]
	h["X-Forwarded-Proto"] = all[2:3:3]
	h["Forwarded"] = all[3:4:4]
}

// forwardedElement is one RFC 7239 element; IPv6 and hosts are quoted.
func forwardedElement(peer netip.Addr, ip, host, proto string) string {
	if peer.Is6() {
		ip = `"[` + ip + `]"`
	}
	return "for=" + ip + ";host=" + quote(host) + ";proto=" + proto
}

// quote makes s a quoted-string, dropping control characters.
func quote(s string) string {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c != 0x7f && c != '"' && c != '\\'
	}
	if plain {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		if r < 0x20 || r == 0x7f {
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
