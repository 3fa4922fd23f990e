// Package kubetest starts a real Kubernetes control plane for tests: etcd and
// kube-apiserver on free loopback ports, with optional kube-controller-manager,
// kube-scheduler and kwok (fake nodes whose pods become Running without a
// kubelet). The binaries are built once per machine from the Go module proxy
// by scripts/testbed into a cache outside the repository; when they cannot be
// had a test fails saying so, it is never skipped.
//
// The API server serves a certificate for 127.0.0.1 from a CA made for the
// test bed, authenticates an admin token (group system:masters) and
// ServiceAccount tokens, and authorizes with RBAC, so least-privilege
// manifests can be tested as written. Everything lives in the test's
// temporary directory and is stopped when the test ends; when it failed, the
// end of every component's log is written to the test log.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BinEnv names the environment variable that may point at the directory
// holding the test bed's binaries (what `bash scripts/testbed` prints).
const BinEnv = "TANDEM_TESTBED_BIN"

// ErrNoBinaries means the test bed's binaries could not be found or built.
var ErrNoBinaries = errors.New("kubetest: Kubernetes test bed binaries not available")

// KWOKNodeAnnotation marks the Node objects kwok manages (WithKWOK).
const KWOKNodeAnnotation = "kwok.x-k8s.io/node"

// readyTimeout bounds each component's start.
const readyTimeout = 60 * time.Second

// The files scripts/testbed puts in the bin dir.
var testbedFiles = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "kwok-stages.yaml"}

var binaries struct {
	mu  sync.Mutex
	dir string
	err error
}

// Binaries returns the directory holding the test bed's binaries: $BinEnv,
// else what `bash scripts/testbed` prints (which builds what is missing; the
// first build on a machine takes minutes, so scripts/test runs it before
// `go test`). It fails t when they cannot be had.
func Binaries(t testing.TB) string {
	t.Helper()
	dir, err := FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// FindBinaries is Binaries without a testing.TB. The result is remembered
// for the life of the process.
func FindBinaries() (string, error) {
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if binaries.dir == "" && binaries.err == nil {
		binaries.dir, binaries.err = findBinaries()
	}
	return binaries.dir, binaries.err
}

// Kubectl returns the path of the test bed's kubectl, of the API server's
// release (Debian's is 1.20; a kubectl on $PATH may be any version).
func Kubectl(t testing.TB) string {
	t.Helper()
	return filepath.Join(Binaries(t), "kubectl")
}

func findBinaries() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %v (run `bash scripts/testbed` and set $%s to what it prints, or unset it)",
				ErrNoBinaries, BinEnv, d, err, BinEnv)
		}
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: $%s is not set and %v", ErrNoBinaries, BinEnv, err)
	}
	script := filepath.Join(root, "scripts", "testbed")
	fmt.Fprintf(os.Stderr, "kubetest: $%s is not set: running %s (a first build takes about 12 minutes; scripts/test runs it before go test)\n", BinEnv, script)
	var out, errOut bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(os.Stderr, &errOut)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: bash %s: %v\n%s", ErrNoBinaries, script, err, lastLines(errOut.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	d := strings.TrimSpace(lines[len(lines)-1])
	if err := checkBinDir(d); err != nil {
		return "", fmt.Errorf("%w: %s printed %q: %v", ErrNoBinaries, script, d, err)
	}
	return d, nil
}

func checkBinDir(d string) error {
	var missing []string
	for _, f := range testbedFiles {
		if st, err := os.Stat(filepath.Join(d, f)); err != nil || st.IsDir() {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// repoRoot finds the directory holding scripts/testbed: from this source
// file's path when it is absolute (not under -trimpath), else upwards from
// the working directory (go test runs in the package's directory).
func repoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, d := range starts {
		for {
			if st, err := os.Stat(filepath.Join(d, "scripts", "testbed")); err == nil && !st.IsDir() {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("no scripts/testbed above %s", strings.Join(starts, " or "))
}

// Option adds a component to a test bed.
type Option func(*options)

type options struct {
	controllerManager bool
	scheduler         bool
	kwokNodes         int
}

// WithControllerManager runs kube-controller-manager against the API server
// (every default controller; there is no cloud provider). Start then waits
// for the default ServiceAccount, which pods need before they are admitted.
func WithControllerManager() Option { return func(o *options) { o.controllerManager = true } }

// WithScheduler runs kube-scheduler against the API server.
func WithScheduler() Option { return func(o *options) { o.scheduler = true } }

// WithKWOK runs kwok and creates nodes fake Nodes (kwok-node-0, ...)
// carrying KWOKNodeAnnotation, without taints; Start waits until they are
// Ready. Pods bound to them become Running with fake IPs from 10.244.0.0/16:
// nothing listens there, never dial them. Deployments and ReplicaSets also
// need WithControllerManager, unbound pods WithScheduler.
func WithKWOK(nodes int) Option { return func(o *options) { o.kwokNodes = nodes } }

// Cluster is one running test bed.
type Cluster struct {
	dir        string
	url        string
	caFile     string
	caPEM      []byte
	token      string
	kubeconfig string
	cfg        *rest.Config
	client     kubernetes.Interface
	procs      []*proc
	n          int // log files and kubeconfigs written, for unique names
	mu         sync.Mutex
}

// Start starts etcd and kube-apiserver (and what opts add) for t, waits
// until they are ready, and stops them when t ends.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binaries(t)
	c := &Cluster{dir: t.TempDir()}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		failed := t.Failed()
		c.stop()
		if failed {
			for _, p := range c.procs {
				t.Logf("kubetest: last lines of %s's log (%s):\n%s", p.name, p.logPath, lastLines(readFile(p.logPath), 50))
			}
		}
	})
	if err := c.start(bin, o); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cluster) start(bin string, o options) error {
	pki, err := newPKI(c.dir)
	if err != nil {
		return err
	}
	c.caFile, c.caPEM, c.token = pki.caFile, pki.caPEM, pki.token

	etcdURL, err := c.startEtcd(bin)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(bin, etcdURL, pki); err != nil {
		return err
	}
	c.cfg = &rest.Config{
		Host:            c.url,
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
	if c.client, err = kubernetes.NewForConfig(c.cfg); err != nil {
		return fmt.Errorf("kubetest: client: %w", err)
	}
	if c.kubeconfig, err = c.writeKubeconfig("admin", c.cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := c.waitFor(ctx, "the default namespace", func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	}); err != nil {
		return err
	}
	if o.controllerManager {
		if _, err := c.startProc(bin, "kube-controller-manager",
			"--kubeconfig="+c.kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
			"--controllers=*",
			"--service-account-private-key-file="+pki.saKeyFile,
			"--root-ca-file="+c.caFile,
			"--use-service-account-credentials=false",
		); err != nil {
			return err
		}
		if err := c.waitFor(ctx, "the default ServiceAccount (kube-controller-manager)", func(ctx context.Context) (bool, error) {
			_, err := c.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, ignoreNotFound(err)
		}); err != nil {
			return err
		}
	}
	if o.scheduler {
		if _, err := c.startProc(bin, "kube-scheduler",
			"--kubeconfig="+c.kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
		); err != nil {
			return err
		}
	}
	if o.kwokNodes > 0 {
		if err := c.startKWOK(ctx, bin, o.kwokNodes); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startEtcd(bin string) (string, error) {
	// A port picked free may be taken before etcd binds it: try again.
	var lastErr error
	for range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return "", err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		p, err := c.startProc(bin, "etcd",
			"--name=kubetest",
			"--data-dir="+filepath.Join(c.dir, "etcd-data"),
			"--listen-client-urls="+client,
			"--advertise-client-urls="+client,
			"--listen-peer-urls="+peer,
			"--initial-advertise-peer-urls="+peer,
			"--initial-cluster=kubetest="+peer,
			"--initial-cluster-state=new",
			// Durability is not what these tests are about; speed is.
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return "", err
		}
		err = p.waitHTTP(client+"/health", nil, "", readyTimeout)
		if err == nil {
			return client, nil
		}
		lastErr = err
		p.stop()
		if !p.addrInUse() {
			break
		}
	}
	return "", lastErr
}

func (c *Cluster) startAPIServer(bin, etcdURL string, pki *pki) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	var lastErr error
	for range 3 {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0])
		policy := filepath.Join(c.dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return err
		}
		p, err := c.startProc(bin, "kube-apiserver",
			// Every list and watch, once as it arrives: what a test counts
			// of a client's requests (ListWatches).
			"--audit-policy-file="+policy,
			"--audit-log-path="+c.auditLog(),
			"--audit-log-mode=blocking",
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(ports[0]),
			"--cert-dir="+filepath.Join(c.dir, "apiserver-certs"),
			"--tls-cert-file="+pki.servingCertFile,
			"--tls-private-key-file="+pki.servingKeyFile,
			"--token-auth-file="+pki.tokenFile,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file="+pki.saPubFile,
			"--service-account-signing-key-file="+pki.saKeyFile,
			"--service-cluster-ip-range=10.96.0.0/24",
			// The kubernetes Service's endpoint would be 127.0.0.1, which
			// Endpoints may not hold; nothing in a test bed dials it.
			"--endpoint-reconciler-type=none",
			// Fewer objects and goroutines at start-up; no test measures
			// API fairness.
			"--enable-priority-and-fairness=false",
			"--profiling=false",
		)
		if err != nil {
			return err
		}
		err = p.waitHTTP(url+"/readyz", pool, c.token, readyTimeout)
		if err == nil {
			c.url = url
			return nil
		}
		lastErr = err
		p.stop()
		if !p.addrInUse() {
			break
		}
	}
	return lastErr
}

func (c *Cluster) startKWOK(ctx context.Context, bin string, nodes int) error {
	if _, err := c.startProc(bin, "kwok",
		"--kubeconfig="+c.kubeconfig,
		"--config="+filepath.Join(bin, "kwok-stages.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+KWOKNodeAnnotation+"=fake",
		"--cidr=10.244.0.1/16",
		"--node-ip=10.243.0.1",
		"--node-lease-duration-seconds=40",
	); err != nil {
		return err
	}
	for i := range nodes {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{KWOKNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
			},
			Status: corev1.NodeStatus{
				Capacity:    fakeNodeResources(),
				Allocatable: fakeNodeResources(),
			},
		}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("kubetest: create node %s: %w", n.Name, err)
		}
	}
	return c.waitFor(ctx, fmt.Sprintf("%d kwok nodes Ready", nodes), func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && n.Annotations[KWOKNodeAnnotation] == "fake" {
					ready++
				}
			}
		}
		return ready >= nodes, nil
	})
}

func fakeNodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// waitFor polls cond until it reports true, returns an error other than a
// transient one, a component exits, or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		for _, p := range c.procs {
			if p.exited() {
				return fmt.Errorf("kubetest: %s exited while waiting for %s: %v\n%s", p.name, what, p.exitErr(), lastLines(readFile(p.logPath), 30))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: %s not there within %s (last error: %v)", what, readyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// stop ends the components, the API server's clients first, etcd last.
func (c *Cluster) stop() {
	var clients, core []*proc
	for _, p := range c.procs {
		switch p.name {
		case "etcd", "kube-apiserver":
			core = append(core, p)
		default:
			clients = append(clients, p)
		}
	}
	stopAll(clients)
	for i := len(core) - 1; i >= 0; i-- {
		core[i].stop()
	}
}

// Config returns a copy of the admin's client configuration (group
// system:masters).
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.cfg) }

// Client returns a clientset with the admin's configuration.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Kubeconfig returns the path of the admin's kubeconfig file, for kubectl
// and for processes started with --kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// URL returns the API server's https URL.
func (c *Cluster) URL() string { return c.url }

// CAFile returns the path of the PEM CA certificate the API server's
// serving certificate (IP 127.0.0.1, DNS localhost and kubernetes.default.svc
// names) is signed by.
func (c *Cluster) CAFile() string { return c.caFile }

// Dir returns the test bed's directory (logs, certificates, kubeconfigs).
func (c *Cluster) Dir() string { return c.dir }

// httpWait polls url until it answers 200.
func (p *proc) waitHTTP(url string, pool *x509.CertPool, token string, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		if p.exited() {
			return fmt.Errorf("kubetest: %s exited at start: %v\n%s", p.name, p.exitErr(), lastLines(readFile(p.logPath), 30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: %s not ready within %s (%s: %s)\n%s", p.name, timeout, url, last, lastLines(readFile(p.logPath), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubetest: free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
