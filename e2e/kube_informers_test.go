package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKubeDiscoverySharesInformers: two groups over one set of pods (one
// namespace, one label selector) make the lists and watches of one group,
// not twice as many, on the test bed's real API server (counted in its
// audit log, by the gateway's User-Agent): the informer is shared. Both
// groups still route to the pod.
func TestKubeDiscoverySharesInformers(t *testing.T) {
	cl, cs := startKube(t)
	master := startApp(t, "master", "")
	port, _ := strconv.Atoi(master.addr[strings.LastIndex(master.addr, ":")+1:])
	publishPod(t, cs, "sense-master-0", "master", port)
	group := func(name string) string {
		return "  - name: " + name + "\n    hosts: [" + name + ".local]\n    kubernetes: {selector: app=sense, port: http}\n" +
			"    health: {path: /status, expect: {body: version}, interval: 200ms, fastInterval: 100ms, timeout: 150ms, rise: 1, fall: 2}\n"
	}
	// podRequests counts the gateways' lists and watches of the pods of
	// the selector, as the API server received them.
	podRequests := func() int {
		n := 0
		for _, r := range cl.ListWatches(t, "tandem") {
			if r.Resource == "pods" && strings.Contains(r.RequestURI, "labelSelector=app%3Dsense") {
				n++
			}
		}
		return n
	}
	run := func(groups ...string) int {
		before := podRequests()
		cfg := "listeners:\n  - {name: http, address: LISTEN}\nadmin: {address: ADMIN}\nlog: {format: text, level: info}\n" +
			"kubernetes: {kubeconfig: " + cl.Kubeconfig() + ", namespace: default}\ngroups:\n"
		for _, g := range groups {
			cfg += group(g)
		}
		g := startGateway(t, cfg)
		defer g.kill()
		for _, name := range groups {
			if !untilTrue(20*time.Second, func() bool {
				req, _ := http.NewRequest(http.MethodGet, "http://"+g.addr+"/hello", nil)
				req.Host = name + ".local"
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Served-By") == "master"
			}) {
				t.Fatalf("group %s is not served by the pod's app", name)
			}
		}
		// An informer's first list (or list-by-watch) and its watch have
		// begun by the time the group served; a moment for a watch that
		// follows its list.
		time.Sleep(time.Second)
		return podRequests() - before
	}
	one := run("a")
	if one == 0 {
		t.Fatal("the audit log shows no list or watch of the pods by the gateway: the count proves nothing")
	}
	two := run("a", "b")
	if two != one {
		t.Errorf("two groups on one selector made %d lists and watches of its pods, one group %d: want the same (one shared informer)", two, one)
	}
}
