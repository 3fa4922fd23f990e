package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwardedHeaders are the client-settable headers that say who the client
// is; they are only believed from a trusted proxy.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

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
func setForwardedHeader(h http.Header, in *http.Request, prefixes []netip.Prefix) {
	peer := peerAddr(in)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	ip := peer.String()
	for _, k := range forwardedHeaders {
		h.Del(k)
	}
	if trusted(peer, prefixes) {
		if prior := strings.Join(in.Header.Values("X-Forwarded-For"), ", "); strings.TrimSpace(prior) != "" {
			ip = prior + ", " + ip
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			h.Set("X-Forwarded-Host", v)
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			h.Set("X-Forwarded-Proto", v)
		}
		if prior := in.Header.Values("Forwarded"); len(prior) > 0 {
			h.Set("Forwarded", strings.Join(prior, ", ")+", "+forwardedElement(peer, in.Host, proto))
		}
	}
	h.Set("X-Forwarded-For", ip)
	if h.Get("X-Forwarded-Host") == "" {
		h.Set("X-Forwarded-Host", in.Host)
	}
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", proto)
	}
	if h.Get("Forwarded") == "" {
		h.Set("Forwarded", forwardedElement(peer, in.Host, proto))
	}
}

// forwardedElement is one RFC 7239 element; IPv6 and hosts are quoted.
func forwardedElement(peer netip.Addr, host, proto string) string {
	forID := peer.String()
	if peer.Is6() {
		forID = `"[` + forID + `]"`
	}
	return "for=" + forID + ";host=" + quote(host) + ";proto=" + proto
}

func quote(s string) string {
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
