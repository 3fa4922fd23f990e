package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocs: what the README points at is in the repository (no link
// outside it, every relative link and docs/ path resolves), the license
// is there, and the architecture page names every step of the request
// path the README lists.
func TestDocs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\(([^)#\s]+)[^)]*\)`).FindAllStringSubmatch(string(readme), -1)
	paths := regexp.MustCompile("`((?:docs|examples|bench|scripts|deploy|internal|appkit|cmd)/[^`\\s]*|\\.\\./[^`\\s]*)`").FindAllStringSubmatch(string(readme), -1)
	for _, m := range append(links, paths...) {
		target := m[1]
		if strings.Contains(target, "://") {
			continue
		}
		full := filepath.Clean(filepath.Join("..", target))
		if rel, err := filepath.Rel("..", full); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("README.md points outside the repository: %s", target)
			continue
		}
		if strings.ContainsAny(target, "*?") || strings.HasSuffix(target, "...") {
			continue
		}
		if _, err := os.Stat(full); err != nil {
			t.Errorf("README.md points at %s, which is not in the repository: %v", target, err)
		}
	}
	lic, err := os.ReadFile("../LICENSE")
	if err != nil || !strings.Contains(string(lic), "Apache License") || !strings.Contains(string(lic), "Version 2.0, January 2004") {
		t.Errorf("LICENSE: want the Apache License 2.0 text (%v)", err)
	}
	arch, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"h1.Server", "proxy.Proxy.Serve", "route.Table.Lookup", "Proxy.forward", "Proxy.send", "route.Group.Pick", "upstream", "Proxy.respond", "Proxy.serveUpgrade", "failover.Decide", "failover.Elector", "X-Tandem-Role"} {
		if !strings.Contains(string(arch), step) {
			t.Errorf("docs/architecture.md does not name %s", step)
		}
	}
}

// TestEngineRunList: every test scripts/test runs again with engine
// net/http is a test of this package (a renamed one would drop out of
// that run without a word).
func TestEngineRunList(t *testing.T) {
	script, err := os.ReadFile("../scripts/test")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`engine_e2e\+?='([^']*)'`).FindAllStringSubmatch(string(script), -1) {
		for n := range strings.SplitSeq(strings.Trim(m[1], "|"), "|") {
			names = append(names, n)
		}
	}
	if len(names) < 10 {
		t.Fatalf("scripts/test names %d tests for the net/http engine's run, want the core e2e tests", len(names))
	}
	files, _ := filepath.Glob("*_test.go")
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, n := range names {
		if !strings.Contains(src.String(), "\nfunc "+n+"(t *testing.T)") {
			t.Errorf("scripts/test runs %s with engine net/http: no such test in e2e", n)
		}
	}
}
