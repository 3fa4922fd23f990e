package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/config"
	"github.com/tandemproxy/tandem/internal/testcert"
)

// TestLoadChecksFiles: Load reads every file the gateway would load and
// reports each missing, unreadable or mismatched one at its line, as
// other mistakes are reported; Parse alone reads none.
func TestLoadChecksFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := testcert.New(t), testcert.New(t)
	certA, keyA := write("a.crt", a.CertPEM, 0o600), write("a.key", a.KeyPEM, 0o600)
	keyB := write("b.key", b.KeyPEM, 0o600)
	token := write("token", []byte("s3cret\n"), 0o600)
	empty := write("empty-token", []byte(" \n"), 0o600)
	notPEM := write("not.pem", []byte("hello\n"), 0o600)
	missing := filepath.Join(dir, "missing.crt")
	// HAProxy's crt: one PEM file holding the chain and the key, in
	// either order; tandem takes it as both cert and key.
	combined := write("combined.pem", append(append(append([]byte{}, a.CertPEM...), b.CertPEM...), a.KeyPEM...), 0o600)
	keyFirst := write("key-first.pem", append(append([]byte{}, a.KeyPEM...), a.CertPEM...), 0o600)

	cfg := func(cert, key, tokenFile, kubeconfig string) string {
		s := "listeners:\n" +
			"  - name: https\n" +
			"    address: \":8443\"\n" +
			"    tls: {cert: \"" + cert + "\", key: \"" + key + "\"}\n" +
			"admin:\n" +
			"  address: \"127.0.0.1:9901\"\n"
		if tokenFile != "" {
			s += "  tokenFile: \"" + tokenFile + "\"\n"
		}
		if kubeconfig != "" {
			s += "kubernetes:\n  kubeconfig: \"" + kubeconfig + "\"\n"
		}
		return s + "groups:\n  - name: app\n    servers:\n      - {name: a, address: \"127.0.0.1:9081\"}\n"
	}
	tests := []struct {
		name string
		yaml string
		want []string // substrings, one per problem, in order
	}{
		{"every file fine", cfg(certA, keyA, token, ""), nil},
		{"one PEM file with the chain and the key", cfg(combined, combined, "", ""), nil},
		{"one PEM file, key first", cfg(keyFirst, keyFirst, "", ""), nil},
		{"a certificate file as its own key", cfg(certA, certA, "", ""), []string{":4: listeners[0].tls.cert: " + certA + " with key " + certA + ": the key file holds certificates but no PEM private key"}},
		{"certificate missing", cfg(missing, keyA, "", ""), []string{":4: listeners[0].tls.cert: certificate " + missing + " does not exist"}},
		{"key missing and token missing", cfg(certA, filepath.Join(dir, "nokey"), filepath.Join(dir, "notoken"), ""), []string{
			":4: listeners[0].tls.key: key " + filepath.Join(dir, "nokey") + " does not exist",
			":7: admin.tokenFile: token file " + filepath.Join(dir, "notoken") + " does not exist",
		}},
		{"key of another certificate", cfg(certA, keyB, "", ""), []string{":4: listeners[0].tls.cert: " + certA + " with key " + keyB + ": the key does not match the certificate"}},
		{"certificate not PEM", cfg(notPEM, keyA, "", ""), []string{":4: listeners[0].tls.cert: " + notPEM + " with key " + keyA + ": the certificate file holds no PEM certificate"}},
		{"empty token file", cfg(certA, keyA, empty, ""), []string{":7: admin.tokenFile: " + empty + " is empty"}},
		{"directory as token file", cfg(certA, keyA, dir, ""), []string{":7: admin.tokenFile: token file " + dir + " is a directory"}},
		{"kubeconfig missing", cfg(certA, keyA, "", filepath.Join(dir, "kubeconfig")), []string{":8: kubernetes.kubeconfig: kubeconfig " + filepath.Join(dir, "kubeconfig") + " does not exist"}},
	}
	if os.Geteuid() != 0 {
		unreadable := write("unreadable.key", a.KeyPEM, 0o000)
		tests = append(tests, struct {
			name string
			yaml string
			want []string
		}{"key not readable", cfg(certA, unreadable, "", ""), []string{":4: listeners[0].tls.key: key " + unreadable + " is not readable by this user"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write("tandem.yaml", []byte(tt.yaml), 0o600)
			_, err := config.Load(path)
			got := messages(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("Load: %d problem(s) %q, want %d like %q (error: %v)", len(got), got, len(tt.want), tt.want, err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], path+":") || !strings.Contains(got[i], w) {
					t.Errorf("problem %d: %q, want %s%s", i, got[i], path, w)
				}
			}
			// Parse is about the text alone: it reads no file.
			if _, err := config.Parse(path, []byte(tt.yaml)); err != nil {
				t.Errorf("Parse: %v, want no problem (it reads no file)", err)
			}
		})
	}
}
