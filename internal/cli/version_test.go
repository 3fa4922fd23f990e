package cli

import (
	"runtime"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/buildinfo"
)

// TestVersion: `version` and `--version` print the same build text, which
// names the Go toolchain: it decides which known vulnerabilities the
// binary carries.
func TestVersion(t *testing.T) {
	want := buildinfo.Get().Text("tandem")
	if !strings.HasPrefix(want, "tandem ") || !strings.Contains(want, "\ngo:     "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("the version text does not name the toolchain:\n%s", want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out, code := run(t, args...); code != 0 || out != want {
			t.Errorf("tandem %v: exit %d\n%s\nwant:\n%s", args, code, out, want)
		}
	}
}
