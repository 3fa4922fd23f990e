package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// checkFiles loads every file the gateway would load at start: each TLS
// listener's certificate and key (and that they match), the admin token
// file, the kubeconfig. A path relative to the working directory is read
// from there, as the gateway does.
func checkFiles(cfg *Config, c *collector) {
	for i, l := range cfg.Listeners {
		t := l.TLS
		if t == nil || t.Cert == "" || t.Key == "" {
			continue
		}
		p := fmt.Sprintf("listeners[%d].tls", i)
		certOK := readable(c, p+".cert", t.Cert, "certificate")
		keyOK := readable(c, p+".key", t.Key, "key")
		if !certOK || !keyOK {
			continue
		}
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			c.at(p+".cert", "%s with key %s: %s", t.Cert, t.Key, pairProblem(err))
		}
	}
	if f := cfg.Admin.TokenFile; f != "" && readable(c, "admin.tokenFile", f, "token file") {
		if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) == "" {
			c.at("admin.tokenFile", "%s is empty: it must hold the admin token", f)
		}
	}
	if k := cfg.Kubernetes; k != nil && k.Kubeconfig != "" {
		readable(c, "kubernetes.kubeconfig", k.Kubeconfig, "kubeconfig")
	}
}

// readable reports whether path is a regular file this process can read,
// and reports a problem on field if not.
func readable(c *collector, field, path, what string) bool {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		var st fs.FileInfo
		if st, err = f.Stat(); err == nil && st.IsDir() {
			c.at(field, "%s %s is a directory", what, path)
			return false
		}
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, fs.ErrNotExist):
		c.at(field, "%s %s does not exist", what, path)
	case errors.Is(err, fs.ErrPermission):
		c.at(field, "%s %s is not readable by this user", what, path)
	default:
		c.at(field, "%s %s: %v", what, path, err)
	}
	return false
}

// pairProblem says in a few words why crypto/tls refused a key pair.
func pairProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "tls: ")
	switch {
	case strings.Contains(msg, "does not match"):
		return "the key does not match the certificate"
	case strings.Contains(msg, "failed to find any PEM data in certificate"):
		return "the certificate file holds no PEM certificate"
	case strings.Contains(msg, "failed to find any PEM data in key"), strings.Contains(msg, "failed to find \"PRIVATE KEY\""):
		return "the key file holds no PEM private key"
	case strings.Contains(msg, "found a certificate rather than a key"):
		// A file given as both cert and key (HAProxy's crt) must hold both.
		return "the key file holds certificates but no PEM private key"
	}
	return msg
}
