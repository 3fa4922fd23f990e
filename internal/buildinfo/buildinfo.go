// Package buildinfo says which build a binary is: its version, commit,
// date and Go toolchain. A release build sets them with -ldflags:
//
//	go build -ldflags "-X github.com/tandemproxy/tandem/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/tandemproxy/tandem/internal/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X github.com/tandemproxy/tandem/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/tandem
//
// What -ldflags leaves unset comes from what the Go toolchain stamps in
// every binary (runtime/debug.ReadBuildInfo): the module version, and
// vcs.revision, vcs.time and vcs.modified of the tree it was built from.
// The CLI, the gateway's first log line and the tandem_build_info metric
// all read Get, so they always agree.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set by -ldflags -X (see the package comment); empty otherwise.
var (
	version string
	commit  string
	date    string
)

// Info is one build's identity.
type Info struct {
	// Version is a release tag (v1.2.3), a pseudo-version the toolchain
	// derived from the commit, or "(devel)".
	Version string
	// Commit is the full VCS revision, "" when the build did not know it.
	Commit string
	// Modified reports a build from a tree with uncommitted changes.
	Modified bool
	// Date is the build date when -ldflags set it, else the commit's time
	// (vcs.time), RFC 3339; "" when neither is known.
	Date string
	// Go is the toolchain (go1.27.3), which decides the known
	// vulnerabilities of the standard library in the binary.
	Go string
	// Platform is GOOS/GOARCH.
	Platform string
}

// Get returns this binary's build information.
var Get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi)
})

// resolve prefers what -ldflags set and completes it from the toolchain's
// stamp (bi may be nil: a binary built without module support).
func resolve(ldVersion, ldCommit, ldDate string, bi *debug.BuildInfo) Info {
	vcs := map[string]string{}
	mainVersion := ""
	if bi != nil {
		mainVersion = bi.Main.Version
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
	}
	in := Info{
		Version:  cmp.Or(ldVersion, mainVersion, "(devel)"),
		Commit:   cmp.Or(ldCommit, vcs["vcs.revision"]),
		Date:     cmp.Or(ldDate, vcs["vcs.time"]),
		Go:       runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	// vcs.modified describes the stamped revision: it says nothing of a
	// commit given by -ldflags.
	if ldCommit == "" || ldCommit == vcs["vcs.revision"] {
		in.Modified = vcs["vcs.modified"] == "true"
	}
	return in
}

// Short is the commit abbreviated to 12 characters, "-dirty" appended for
// a modified tree; "unknown" when the commit is not known.
func (i Info) Short() string {
	if i.Commit == "" {
		return "unknown"
	}
	s := i.Commit[:min(12, len(i.Commit))]
	if i.Modified {
		s += "-dirty"
	}
	return s
}

// Text is the answer of `NAME version` and `NAME --version`.
func (i Info) Text(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", name, i.Version)
	commit := cmp.Or(i.Commit, "unknown")
	if i.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "commit: %s\n", commit)
	fmt.Fprintf(&b, "date:   %s\n", cmp.Or(i.Date, "unknown"))
	fmt.Fprintf(&b, "go:     %s %s\n", i.Go, i.Platform)
	return b.String()
}

// LogAttrs are the build's fields for a log line.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "commit", i.Short(), "date", cmp.Or(i.Date, "unknown"), "go", i.Go}
}
