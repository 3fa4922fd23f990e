package e2e

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// git runs git in the repository and returns its output, trimmed.
func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(cmd.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// buildTandem builds cmd/tandem with extra go build flags.
func buildTandem(t *testing.T, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tandem")
	build := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), "../cmd/tandem")...)
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", flags, err, msg)
	}
	return out
}

// buildFields is what `tandem version` says, as fields; both spellings of
// the command must say the same.
type buildFields struct{ version, commit, date, goVersion string }

func versionOf(t *testing.T, binary string) (buildFields, string) {
	t.Helper()
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if flag, err := exec.Command(binary, "--version").Output(); err != nil || string(flag) != string(out) {
		t.Errorf("tandem --version printed %q (%v), want what tandem version prints, %q", flag, err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	name, version, ok := strings.Cut(lines[0], " ")
	if len(lines) != 4 || !ok || name != "tandem" {
		t.Fatalf("tandem version printed %q, want 4 lines: name and version, commit, date, go", out)
	}
	f := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		f[k] = strings.TrimSpace(v)
	}
	return buildFields{version: version, commit: f["commit"], date: f["date"], goVersion: f["go"]}, string(out)
}

// TestVersion: `tandem version` and `--version` say the same. Without
// -ldflags the commit, its date and whether the tree was modified are the
// tree's the binary was built from (what the toolchain stamps); -ldflags
// sets version, commit and date. A running gateway says the same as its
// binary in tandem_build_info and in its first log line.
func TestVersion(t *testing.T) {
	goLine := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH

	// -buildvcs=true: a GOFLAGS of the machine's may turn the stamp off.
	stamped := buildTandem(t, "-buildvcs=true")
	t.Run("stamped", func(t *testing.T) {
		f, out := versionOf(t, stamped)
		want := git(t, "rev-parse", "HEAD")
		if git(t, "status", "--porcelain") != "" {
			want += " (modified)"
		}
		wantDate := git(t, "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")
		if f.commit != want || f.date != wantDate || f.goVersion != goLine || f.version == "(devel)" {
			t.Errorf("tandem version:\n%s\nwant a version from the toolchain, commit %q, date %q and %s", out, want, wantDate, goLine)
		}
	})

	t.Run("ldflags", func(t *testing.T) {
		const pkg = "github.com/tandemproxy/tandem/internal/buildinfo."
		_, out := versionOf(t, buildTandem(t, "-ldflags",
			"-X "+pkg+"version=v9.8.7 -X "+pkg+"commit=0123456789abcdef0123456789abcdef01234567 -X "+pkg+"date=2030-01-02T03:04:05Z"))
		want := "tandem v9.8.7\ncommit: 0123456789abcdef0123456789abcdef01234567\ndate:   2030-01-02T03:04:05Z\ngo:     " + goLine + "\n"
		if out != want {
			t.Errorf("a release build's version:\n%s\nwant:\n%s", out, want)
		}
	})

	t.Run("gateway", func(t *testing.T) {
		// The stamped binary runs the gateway (no test runs beside this one).
		harness := bin
		bin = stamped
		t.Cleanup(func() { bin = harness })
		f, _ := versionOf(t, bin)
		commit, modified := strings.CutSuffix(f.commit, " (modified)")
		short := commit[:min(12, len(commit))]
		if modified {
			short += "-dirty"
		}
		g := startGateway(t, gwConfig(startApp(t, "master", "")))
		key := `tandem_build_info{commit="` + commit + `",date="` + f.date + `",goversion="` + runtime.Version() +
			`",modified="` + strconv.FormatBool(modified) + `",version="` + f.version + `"}`
		if v, ok := scrape(t, g)[key]; !ok || v != 1 {
			var seen []string
			for k := range scrape(t, g) {
				if strings.HasPrefix(k, "tandem_build_info") {
					seen = append(seen, k)
				}
			}
			t.Errorf("want %s 1, the metrics have %v", key, seen)
		}
		first, _, _ := strings.Cut(g.out.String(), "\n")
		for _, want := range []string{`msg="tandem starting"`, "version=" + f.version, "commit=" + short, "date=" + f.date, "go=" + runtime.Version()} {
			if !strings.Contains(first, want+" ") {
				t.Errorf("the gateway's first log line %q lacks %s", first, want)
			}
		}
	})
}
