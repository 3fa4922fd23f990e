package admin

import (
	_ "embed"
	"net/http"
)

//go:embed status.html
var statusPage []byte

// page serves the status page: one self-contained HTML file.
func (s *Server) page(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; img-src data:")
	h.Set("X-Frame-Options", "DENY")
	w.Write(statusPage)
}
