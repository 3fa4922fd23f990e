// Package helmchart tests the Helm chart in deploy/helm/tandem with the Helm
// Go module, as `helm lint` and `helm install` would. This file: lint,
// render, the schema refusing bad values with their path, the rendered
// tandem.yaml passing tandem's own validation, the RBAC equal to
// deploy/kubernetes/rbac.yaml, the pods' shape. cluster_test.go: the same
// manifests on a real control plane.
package helmchart

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/client-go/rest"

	"github.com/tandemproxy/tandem/internal/config"
)

const chartDir = "tandem"

// object is one rendered manifest, decoded.
type object struct {
	file string
	raw  string
	doc  map[string]any
}

func (o object) kind() string { return str(o.doc, "kind") }
func (o object) name() string { return str(o.doc, "metadata", "name") }

// get walks maps by key and lists by index ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(m) {
				return nil
			}
			v = m[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

// render renders the chart as `helm template tandem deploy/helm/tandem -n
// NAMESPACE -f VALUES` does: values coalesced with the chart's and validated
// against values.schema.json, then every template.
func render(values map[string]any, namespace string) ([]object, error) {
	return renderFrom(nil, values, namespace)
}

// renderFrom renders as `helm upgrade` does against the cluster of cfg,
// where the templates' lookup sees what is there; with a nil cfg, as
// `helm install --dry-run` (lookup finds nothing).
func renderFrom(cfg *rest.Config, values map[string]any, namespace string) ([]object, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	opts := chartutil.ReleaseOptions{Name: "tandem", Namespace: namespace, Revision: 1, IsInstall: true}
	if cfg != nil {
		opts = chartutil.ReleaseOptions{Name: "tandem", Namespace: namespace, Revision: 2, IsUpgrade: true}
	}
	vals, err := chartutil.ToRenderValues(ch, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	var files map[string]string
	if cfg != nil {
		files, err = engine.New(cfg).Render(ch, vals)
	} else {
		files, err = engine.Render(ch, vals)
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var objs []object
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		for _, raw := range strings.Split(files[n], "\n---") {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
				return nil, err
			}
			if doc != nil {
				objs = append(objs, object{file: n, raw: raw, doc: doc})
			}
		}
	}
	return objs, nil
}

func mustRender(t *testing.T, values map[string]any, namespace string) []object {
	t.Helper()
	objs, err := render(values, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return object{}
}

// values decodes a YAML literal, as `-f values.yaml` would give it.
func values(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// everything turns every optional part on.
const everything = `
example: {enabled: true, zones: required}
metrics: {serviceMonitor: {enabled: true}}
listeners:
  - {name: https, port: 8443, servicePort: 443, tls: {secretName: tandem-tls}, hsts: {maxAge: 16000000, preload: true}}
  - {name: http, port: 8080, servicePort: 80, redirectHTTPS: true, httpsPort: 443}
service: {type: LoadBalancer, externalTrafficPolicy: Local}
`

func TestLint(t *testing.T) {
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"everything", everything},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lint.All(chartDir, values(t, tc.values), "tandem", false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{`replicas: three`, "/replicas"},
		{`replicas: 0`, "/replicas"},
		{`replica: 3`, "additional properties 'replica'"},
		{`image: {pullPolicy: Sometimes}`, "/image/pullPolicy"},
		{`listeners: [{name: http, port: 70000}]`, "/listeners/0/port"},
		{`listeners: [{name: admin, port: 8080}]`, "/listeners/0/name"},
		{`listeners: [{name: HTTP_Public, port: 8080}]`, "/listeners/0/name"},
		{`listeners: [{name: https, port: 8443, tls: {}}]`, "/listeners/0/tls"},
		{`coordination: {name: tandem, fenceAfter: soon}`, "/coordination/fenceAfter"},
		{`log: {level: loud}`, "/log/level"},
		{`groups: [{mode: failover}]`, "/groups/0"},
		{`groups: [{name: sense, mode: active-active}]`, "/groups/0/mode"},
		{`podDisruptionBudget: {enabled: yes-please}`, "/podDisruptionBudget/enabled"},
		{`topologySpread: {zone: Never}`, "/topologySpread/zone"},
		{`topologySpread: [{topologyKey: topology.kubernetes.io/zone}]`, "/topologySpread"},
		{`example: {zones: sometimes}`, "/example/zones"},
		{`metrics: {serviceMonitor: {enable: true}}`, "/metrics/serviceMonitor"},
	} {
		t.Run(tc.values, func(t *testing.T) {
			_, err := render(values(t, tc.values), "tandem")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the error does not name %s:\n%v", tc.want, err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestConfigIsValid: the tandem.yaml the chart renders passes `tandem check`.
func TestConfigIsValid(t *testing.T) {
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"everything", everything},
		{"coordination name and a group elsewhere", `
coordination: {name: edge, leaseDuration: 12s}
admin: {port: 9000}
groups:
  - name: sense
    hosts: [sense.domain.com]
    kubernetes: {namespace: apps, selector: app=sense, port: http}
    health: {path: /status, expect: {body: version}}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustRender(t, values(t, tc.values), "tandem")
			data := str(find(t, objs, "ConfigMap", "tandem-config").doc, "data", "tandem.yaml")
			cfg, err := config.Parse("tandem.yaml", []byte(data))
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if cfg.Admin.TokenFile != "/etc/tandem/admin/token" || strings.HasPrefix(cfg.Admin.Address, "127.") {
				t.Errorf("admin = %+v: want every address, with the mounted token", cfg.Admin)
			}
			if k := cfg.Kubernetes; k == nil || k.Coordination == nil || k.Identity != "" || k.Namespace != "" {
				t.Errorf("kubernetes = %+v: want coordination, identity and namespace from POD_NAME and POD_NAMESPACE", k)
			}
			dep := find(t, objs, "Deployment", "tandem")
			c := get(dep.doc, "spec", "template", "spec", "containers", "0")
			for _, env := range []string{"POD_NAME", "POD_NAMESPACE"} {
				if !strings.Contains(dep.raw, "- name: "+env+"\n") {
					t.Errorf("the gateway container lacks env %s", env)
				}
			}
			// Every listener has its container port and Service port.
			svc := find(t, objs, "Service", "tandem")
			for _, l := range cfg.Listeners {
				if !strings.Contains(dep.raw, "- name: "+l.Name+"\n") || !strings.Contains(svc.raw, "targetPort: "+l.Name+"\n") {
					t.Errorf("listener %s lacks its container or Service port", l.Name)
				}
				if l.TLS != nil && !strings.Contains(dep.raw, "path: tls/"+l.Name+"/tls.crt") {
					t.Errorf("listener %s: its certificate is not mounted", l.Name)
				}
			}
			if str(c, "livenessProbe", "httpGet", "path") != "/healthz" || str(c, "readinessProbe", "httpGet", "path") != "/readyz" {
				t.Errorf("probes: %v / %v", get(c, "livenessProbe"), get(c, "readinessProbe"))
			}
			if co := cfg.Kubernetes.Coordination; co.Name == "edge" && co.LeaseDuration.D() != 12*time.Second {
				t.Errorf("coordination.leaseDuration = %v, want the value's 12s", co.LeaseDuration.D())
			}
			// The Role's resourceName follows coordination.name.
			want := cfg.Kubernetes.Coordination.Name + "-decisions"
			if role := find(t, objs, "Role", "tandem-coordination"); !strings.Contains(role.raw, `resourceNames: ["`+want+`"]`) {
				t.Errorf("the coordination Role does not name ConfigMap %s:\n%s", want, role.raw)
			}
		})
	}
}

// TestRBACIsThePlainManifest: the chart's Roles grant exactly what
// deploy/kubernetes/rbac.yaml grants (the e2e tests run the replicas bound by
// that file), so that the two cannot drift apart.
func TestRBACIsThePlainManifest(t *testing.T) {
	b, err := os.ReadFile("../kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]any{}
	for _, raw := range strings.Split(string(b), "\n---") {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatal(err)
		}
		if str(doc, "kind") == "Role" {
			plain[str(doc, "metadata", "name")] = get(doc, "rules")
		}
	}
	chart := map[string]any{}
	for _, o := range mustRender(t, nil, "tandem") {
		if o.kind() == "Role" {
			chart[o.name()] = get(o.doc, "rules")
		}
	}
	if len(plain) != 2 || !reflect.DeepEqual(plain, chart) {
		t.Errorf("the chart's Roles:\n%v\ndeploy/kubernetes/rbac.yaml:\n%v", chart, plain)
	}
}

// TestGatewayPodShape: replicas, spread, PDB, security context, the image
// that `go run ./deploy/image` names from the same values.
func TestGatewayPodShape(t *testing.T) {
	if testing.Verbose() {
		for _, o := range mustRender(t, values(t, everything), "tandem") {
			t.Logf("# %s\n%s", o.file, o.raw)
		}
	}
	objs := mustRender(t, values(t, everything), "tandem")
	dep := find(t, objs, "Deployment", "tandem")
	spec := get(dep.doc, "spec", "template", "spec")
	if r := get(dep.doc, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %v, want 3", r)
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if img, want := str(spec, "containers", "0", "image"), "ghcr.io/tandemproxy/tandem:"+ch.Metadata.AppVersion; img != want {
		t.Errorf("image = %s, want %s", img, want)
	}
	for _, tc := range []struct {
		values string
		want   []string
	}{
		{"", []string{"topology.kubernetes.io/zone/DoNotSchedule", "kubernetes.io/hostname/ScheduleAnyway"}},
		{"topologySpread: {zone: ScheduleAnyway, node: off}", []string{"topology.kubernetes.io/zone/ScheduleAnyway"}},
		{"topologySpread: {zone: off, node: off}", nil},
	} {
		d := find(t, mustRender(t, values(t, tc.values), "tandem"), "Deployment", "tandem")
		var keys []string
		cs, _ := get(d.doc, "spec", "template", "spec", "topologySpreadConstraints").([]any)
		for _, c := range cs {
			keys = append(keys, str(c, "topologyKey")+"/"+str(c, "whenUnsatisfiable"))
		}
		if !slices.Equal(keys, tc.want) {
			t.Errorf("%q: topology spread = %v, want %v", tc.values, keys, tc.want)
		}
	}
	if get(spec, "securityContext", "runAsNonRoot") != true || get(spec, "securityContext", "runAsUser") != 65532 {
		t.Errorf("pod securityContext = %v", get(spec, "securityContext"))
	}
	sc := get(spec, "containers", "0", "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false ||
		str(sc, "capabilities", "drop", "0") != "ALL" {
		t.Errorf("container securityContext = %v", sc)
	}
	if pdb := find(t, objs, "PodDisruptionBudget", "tandem"); get(pdb.doc, "spec", "maxUnavailable") != 1 {
		t.Errorf("PDB = %v", get(pdb.doc, "spec"))
	}
	sm := find(t, objs, "ServiceMonitor", "tandem")
	if str(sm.doc, "apiVersion") != "monitoring.coreos.com/v1" || str(sm.doc, "spec", "endpoints", "0", "authorization", "credentials", "name") != "tandem-admin" {
		t.Errorf("ServiceMonitor = %v", sm.doc)
	}
	for _, o := range mustRender(t, nil, "tandem") {
		if o.kind() == "ServiceMonitor" || strings.Contains(o.name(), "example") {
			t.Errorf("rendered by default: %s %s", o.kind(), o.name())
		}
	}
	// minAvailable replaces the default maxUnavailable.
	pdb := get(find(t, mustRender(t, values(t, "podDisruptionBudget: {minAvailable: 2}"), "tandem"), "PodDisruptionBudget", "tandem").doc, "spec")
	if get(pdb, "minAvailable") != 2 || get(pdb, "maxUnavailable") != nil {
		t.Errorf("PDB with minAvailable: %v", pdb)
	}
	// An existing Secret holds the admin token: none is rendered, the pods
	// and the ServiceMonitor use that one.
	own := mustRender(t, values(t, "admin: {existingSecret: ops-token}\nmetrics: {serviceMonitor: {enabled: true}}"), "tandem")
	for _, o := range own {
		if o.kind() == "Secret" {
			t.Errorf("a Secret rendered with admin.existingSecret: %s", o.name())
		}
	}
	if d := find(t, own, "Deployment", "tandem"); !strings.Contains(d.raw, "name: ops-token\n") {
		t.Errorf("the pods do not mount Secret ops-token")
	}
	if sm := find(t, own, "ServiceMonitor", "tandem"); str(sm.doc, "spec", "endpoints", "0", "authorization", "credentials", "name") != "ops-token" {
		t.Errorf("the ServiceMonitor does not use Secret ops-token")
	}
	// The example: master and failover, one pod each, Recreate, apart.
	for _, role := range []string{"master", "failover"} {
		other := map[string]string{"master": "failover", "failover": "master"}[role]
		d := find(t, objs, "Deployment", "tandem-example-"+role)
		ps := get(d.doc, "spec", "template", "spec")
		if get(d.doc, "spec", "replicas") != 1 || str(d.doc, "spec", "strategy", "type") != "Recreate" ||
			str(d.doc, "spec", "template", "metadata", "labels", "tandem.io/role") != role {
			t.Errorf("%s: %v", role, get(d.doc, "spec"))
		}
		var topo []string
		for _, term := range get(ps, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution").([]any) {
			if str(term, "labelSelector", "matchLabels", "tandem.io/role") != other {
				t.Errorf("%s: anti-affinity term selects %v", role, get(term, "labelSelector"))
			}
			topo = append(topo, str(term, "topologyKey"))
		}
		if !slices.Equal(topo, []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}) {
			t.Errorf("%s: required anti-affinity over %v", role, topo)
		}
		if str(ps, "containers", "0", "readinessProbe", "httpGet", "path") != "/status" {
			t.Errorf("%s: readiness = %v", role, get(ps, "containers", "0", "readinessProbe"))
		}
	}
}
