package httpsyntax

import (
	"net/http"
	"testing"
)

func TestHasToken(t *testing.T) {
	tests := []struct {
		values []string
		token  string
		want   bool
	}{
		{[]string{"Upgrade"}, "upgrade", true},
		{[]string{"keep-alive, Upgrade"}, "upgrade", true},
		{[]string{" keep-alive ,\tUPGRADE\t"}, "upgrade", true},
		{[]string{"keep-alive", "upgrade"}, "upgrade", true},
		{[]string{"upgraded"}, "upgrade", false},
		{[]string{"upgrade=1"}, "upgrade", false},
		{[]string{"up grade"}, "upgrade", false},
		{[]string{"websoc\u212aet"}, "websocket", false}, // the Kelvin sign folds to k in Unicode, not in ASCII
		{[]string{"X-Hop, x-other"}, "X-Other", true},
		{nil, "close", false},
	}
	for _, tt := range tests {
		if got := HasToken(tt.values, tt.token); got != tt.want {
			t.Errorf("HasToken(%q, %q) = %v, want %v", tt.values, tt.token, got, tt.want)
		}
	}
}

func TestHopByHop(t *testing.T) {
	for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if !HopByHop(k) || !HopByHop(http.CanonicalHeaderKey(k)) {
			t.Errorf("%s is hop-by-hop", k)
		}
	}
	for _, k := range []string{"Content-Length", "Content-Type", "Cookie", "Host", "X-Forwarded-For", "Trailers"} {
		if HopByHop(k) {
			t.Errorf("%s is not hop-by-hop", k)
		}
	}
}
