package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/tandemproxy/tandem/internal/httpsyntax"
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

// forwarded is what the forwarding headers of one request say.
type forwarded struct {
	peer     netip.Addr
	host     string // the request's Host
	proto    string // this hop's: http or https
	priorFor string // a trusted peer's X-Forwarded-For, joined; else ""
	xfHost   string // X-Forwarded-Host to send
	xfProto  string // X-Forwarded-Proto to send
	priorFwd string // a trusted peer's Forwarded elements, joined, and ", "; else ""
}

func forwardedOf(in *http.Request, prefixes []netip.Prefix) forwarded {
	peer := peerAddr(in)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	f := forwarded{peer: peer, host: in.Host, proto: proto, xfHost: in.Host, xfProto: proto}
	if trusted(peer, prefixes) {
		if prior := strings.Join(in.Header["X-Forwarded-For"], ", "); strings.TrimSpace(prior) != "" {
			f.priorFor = prior
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
			f.xfHost = v[0]
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 && v[0] != "" {
			f.xfProto = v[0]
		}
		if prior := in.Header["Forwarded"]; len(prior) > 0 {
			f.priorFwd = strings.Join(prior, ", ") + ", "
		}
	}
	return f
}

// valid reports whether the values taken from a trusted peer's headers
// are fit to send (the request's Host is checked apart).
func (f *forwarded) valid() bool {
	return httpsyntax.FieldValue(f.priorFor) && httpsyntax.FieldValue(f.xfHost) &&
		httpsyntax.FieldValue(f.xfProto) && httpsyntax.FieldValue(f.priorFwd)
}

// appendTo appends the four header lines.
func (f *forwarded) appendTo(b []byte) []byte {
	b = append(b, "X-Forwarded-For: "...)
	b = f.appendFor(b)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, f.xfHost...)
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, f.xfProto...)
	b = append(b, "\r\nForwarded: "...)
	b = f.appendForwarded(b)
	return append(b, "\r\n"...)
}

// appendFor appends the X-Forwarded-For value.
func (f *forwarded) appendFor(b []byte) []byte {
	if f.priorFor != "" {
		b = append(b, f.priorFor...)
		b = append(b, ", "...)
	}
	return appendAddr(b, f.peer)
}

// appendForwarded appends the Forwarded value: the trusted prior elements
// and this hop's RFC 7239 element; IPv6 and hosts are quoted.
func (f *forwarded) appendForwarded(b []byte) []byte {
	b = append(b, f.priorFwd...)
	b = append(b, "for="...)
	if f.peer.Is6() {
		b = append(b, `"[`...)
		b = appendAddr(b, f.peer)
		b = append(b, `]"`...)
	} else {
		b = appendAddr(b, f.peer)
	}
	b = append(b, ";host="...)
	b = appendQuoted(b, f.host)
	b = append(b, ";proto="...)
	return append(b, f.proto...)
}

// appendAddr appends a.String().
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, a.String()...)
	}
	return a.AppendTo(b)
}

// appendQuoted appends s as a quoted-string, dropping control characters.
func appendQuoted(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c != 0x7f && c != '"' && c != '\\'
	}
	b = append(b, '"')
	if plain {
		b = append(b, s...)
		return append(b, '"')
	}
	for _, r := range s {
		if r == '"' || r == '\\' {
			b = append(b, '\\')
		}
		if r < 0x20 || r == 0x7f {
			continue
		}
		b = utf8.AppendRune(b, r)
	}
	return append(b, '"')
}
