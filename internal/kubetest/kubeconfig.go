package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// tokenLifetime is how long a ServiceAccount token from ConfigFor lasts:
// longer than any test.
const tokenLifetime = 24 * time.Hour

// ConfigFor returns a client configuration that authenticates as the
// ServiceAccount namespace/serviceAccount with a token from the TokenRequest
// API, creating the namespace and the ServiceAccount if missing. It has only
// the rights RBAC gives that ServiceAccount: for least-privilege tests.
func (c *Cluster) ConfigFor(t testing.TB, namespace, serviceAccount string) *rest.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := c.configFor(ctx, namespace, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (c *Cluster) configFor(ctx context.Context, namespace, serviceAccount string) (*rest.Config, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kubetest: create namespace %s: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount, Namespace: namespace}}
	if _, err := c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kubetest: create ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	secs := int64(tokenLifetime / time.Second)
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubetest: TokenRequest for %s/%s: %w", namespace, serviceAccount, err)
	}
	cfg := rest.CopyConfig(c.cfg)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// KubeconfigFor is ConfigFor written as a kubeconfig file (namespace as its
// context's namespace); it returns the path.
func (c *Cluster) KubeconfigFor(t testing.TB, namespace, serviceAccount string) string {
	t.Helper()
	cfg := c.ConfigFor(t, namespace, serviceAccount)
	path, err := c.writeKubeconfigNS(namespace+"-"+serviceAccount, cfg, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// ConfigVia returns a copy of cfg that reaches the API server through addr
// (host:port, a Relay's Addr): the serving certificate is still verified,
// against the name 127.0.0.1.
func ConfigVia(cfg *rest.Config, addr string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Host = "https://" + addr
	cfg.TLSClientConfig.ServerName = "127.0.0.1"
	return cfg
}

// KubeconfigVia writes an admin kubeconfig that reaches the API server
// through addr (see ConfigVia) and returns its path.
func (c *Cluster) KubeconfigVia(t testing.TB, addr string) string {
	t.Helper()
	return c.WriteKubeconfig(t, ConfigVia(c.cfg, addr))
}

// WriteKubeconfig writes cfg (host, CA, TLS server name, bearer token) as a
// kubeconfig file in the test bed's directory and returns its path.
func (c *Cluster) WriteKubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	path, err := c.writeKubeconfig("custom", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func (c *Cluster) writeKubeconfig(hint string, cfg *rest.Config) (string, error) {
	return c.writeKubeconfigNS(hint, cfg, "")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// writeKubeconfigNS writes a kubeconfig for cfg. JSON is YAML: encoding/json
// gets the quoting right without a YAML dependency.
func (c *Cluster) writeKubeconfigNS(hint string, cfg *rest.Config, namespace string) (string, error) {
	caData := cfg.TLSClientConfig.CAData
	if len(caData) == 0 && cfg.TLSClientConfig.CAFile != "" {
		b, err := os.ReadFile(cfg.TLSClientConfig.CAFile)
		if err != nil {
			return "", fmt.Errorf("kubetest: %w", err)
		}
		caData = b
	}
	type cluster struct {
		Server        string `json:"server"`
		CAData        []byte `json:"certificate-authority-data,omitempty"`
		TLSServerName string `json:"tls-server-name,omitempty"`
	}
	type user struct {
		Token string `json:"token,omitempty"`
	}
	type kcontext struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace,omitempty"`
	}
	kc := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "kubetest",
		"clusters": []map[string]any{{"name": "kubetest", "cluster": cluster{
			Server: cfg.Host, CAData: caData, TLSServerName: cfg.TLSClientConfig.ServerName}}},
		"users":    []map[string]any{{"name": "kubetest", "user": user{Token: cfg.BearerToken}}},
		"contexts": []map[string]any{{"name": "kubetest", "context": kcontext{Cluster: "kubetest", User: "kubetest", Namespace: namespace}}},
	}
	b, err := json.MarshalIndent(kc, "", "  ")
	if err != nil {
		return "", fmt.Errorf("kubetest: kubeconfig: %w", err)
	}
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	path := filepath.Join(c.dir, fmt.Sprintf("kubeconfig-%d-%s", n, unsafeName.ReplaceAllString(hint, "_")))
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	return path, nil
}
