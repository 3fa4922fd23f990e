package admin

import (
	_ "embed"
	"net/http"
)

//go:embed status.html
var statusPage []byte

// pageCSP lets the page run its own inline script and style and talk to
// this API, and nothing else: no external asset, no frame, no form post.
const pageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the status page: one self-contained HTML file that polls
// GET /api/v1/state and posts the operator's actions to the API.
func (s *Server) page(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.Write(statusPage)
}
