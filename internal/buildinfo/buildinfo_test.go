package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func stamped(version string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/tandemproxy/tandem", Version: version}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

func TestResolve(t *testing.T) {
	const rev, other = "2f2e36a1b2c3d4e5f60718293a4b5c6d7e8f9012", "0123456789abcdef0123456789abcdef01234567"
	vcs := stamped("v0.0.0-20260101120000-2f2e36a1b2c3+dirty", "vcs.revision", rev, "vcs.time", "2026-01-01T12:00:00Z", "vcs.modified", "true")
	for _, tc := range []struct {
		name            string
		ldV, ldC, ldD   string
		bi              *debug.BuildInfo
		version, commit string
		date, short     string
		modified        bool
	}{
		{name: "toolchain stamp only", bi: vcs, version: "v0.0.0-20260101120000-2f2e36a1b2c3+dirty", commit: rev,
			date: "2026-01-01T12:00:00Z", modified: true, short: "2f2e36a1b2c3-dirty"},
		{name: "ldflags win", ldV: "v1.2.3", ldC: other, ldD: "2026-02-03T04:05:06Z", bi: vcs, version: "v1.2.3", commit: other,
			date: "2026-02-03T04:05:06Z", short: "0123456789ab"},
		{name: "ldflags commit is the stamped one: modified kept", ldV: "v1.2.3", ldC: rev, bi: vcs, version: "v1.2.3", commit: rev,
			date: "2026-01-01T12:00:00Z", modified: true, short: "2f2e36a1b2c3-dirty"},
		{name: "ldflags version only", ldV: "v1.2.3", bi: stamped("(devel)"), version: "v1.2.3", short: "unknown"},
		{name: "no build info", bi: nil, version: "(devel)", short: "unknown"},
		{name: "module without VCS", bi: stamped(""), version: "(devel)", short: "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.ldV, tc.ldC, tc.ldD, tc.bi)
			want := Info{Version: tc.version, Commit: tc.commit, Date: tc.date, Modified: tc.modified,
				Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			if got != want {
				t.Errorf("resolve = %+v\nwant %+v", got, want)
			}
			if got.Short() != tc.short {
				t.Errorf("Short() = %q, want %q", got.Short(), tc.short)
			}
		})
	}
}

func TestText(t *testing.T) {
	in := Info{Version: "v1.2.3", Commit: "2f2e36a1b2c3d4e5", Modified: true, Date: "2026-02-03T04:05:06Z", Go: "go1.27.3", Platform: "linux/amd64"}
	want := "tandem v1.2.3\ncommit: 2f2e36a1b2c3d4e5 (modified)\ndate:   2026-02-03T04:05:06Z\ngo:     go1.27.3 linux/amd64\n"
	if got := in.Text("tandem"); got != want {
		t.Errorf("Text:\n%s\nwant:\n%s", got, want)
	}
	if got := (Info{Version: "(devel)", Go: "go1.27.3", Platform: "linux/amd64"}).Text("tandem"); !strings.Contains(got, "commit: unknown\ndate:   unknown\n") {
		t.Errorf("unknown commit and date are not said so:\n%s", got)
	}
}
