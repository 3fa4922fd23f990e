package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tandemproxy/tandem/internal/testcert"
)

// benchCert is the self-signed certificate both proxies serve HTTPS with,
// in the files each reads: tandem a certificate and a key, HAProxy one PEM
// with both.
type benchCert struct {
	certFile, keyFile, pemFile string
}

// clientTLS is what the bench's clients trust: the certificate of the run
// (set by newBenchCert), for 127.0.0.1, speaking HTTP/1.1 as wrk does.
var clientTLS = &tls.Config{NextProtos: []string{"http/1.1"}}

// newBenchCert writes a new certificate into dir and makes the clients
// trust it.
func newBenchCert(dir string) (*benchCert, error) {
	c, err := testcert.Generate()
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	bc := &benchCert{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), pemFile: filepath.Join(dir, "tls.pem")}
	for f, b := range map[string][]byte{bc.certFile: c.CertPEM, bc.keyFile: c.KeyPEM, bc.pemFile: append(append([]byte{}, c.CertPEM...), c.KeyPEM...)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", f, err)
		}
	}
	clientTLS.RootCAs = c.Pool
	return bc, nil
}
