package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/config"
)

const importSample = `backend app
    mode http
    option httpchk GET /status
    server master 10.0.0.1:8080 check
    server failover 10.0.0.2:8080 check backup
    option splice-auto
`

// TestImportHAProxy: the config on stdout, the notes and a summary on
// stderr, and the exit codes the README gives.
func TestImportHAProxy(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(importSample), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout bool     // a config on stdout
		stderr []string // substrings
	}{
		{name: "translated, with a line not translated", args: []string{"import", "haproxy", "--http", ":8080", file}, code: ExitOK, stdout: true,
			stderr: []string{file + ":6: not translated: option splice-auto: tandem has no such option", file + ": 5 of 6 directives translated; 1 note(s) not translated, 0 warning(s)"}},
		{name: "from stdin", args: []string{"import", "haproxy", "--http", ":8080", "-"}, stdin: importSample, code: ExitOK, stdout: true,
			stderr: []string{"stdin:6: not translated: option splice-auto"}},
		{name: "strict", args: []string{"import", "haproxy", "--strict", "--http", ":8080", file}, code: ExitConfig,
			stderr: []string{file + ":6: not translated", "--strict: some directives are not translated"}},
		{name: "nothing listens", args: []string{"import", "haproxy", file}, code: ExitConfig,
			stderr: []string{file + ": error: no frontend or listen section binds an address", "cannot be translated into a working tandem config (1 error(s))"}},
		{name: "no such file", args: []string{"import", "haproxy", filepath.Join(dir, "nope.cfg")}, code: ExitError, stderr: []string{"read HAProxy config"}},
		{name: "no file", args: []string{"import", "haproxy"}, code: ExitError, stderr: []string{"haproxy takes 1 argument(s): FILE, got 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := NewRoot("tandem")
			var stdout, stderr bytes.Buffer
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			root.SetIn(strings.NewReader(tc.stdin))
			root.SetArgs(tc.args)
			err := root.Execute()
			if err != nil {
				stderr.WriteString(err.Error())
			}
			if code := ExitCode(err); code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if !tc.stdout {
				if stdout.Len() > 0 {
					t.Errorf("stdout holds %q, want nothing", stdout.String())
				}
				return
			}
			cfg, err := config.Parse("imported.yaml", stdout.Bytes())
			if err != nil {
				t.Fatalf("stdout is not a valid config: %v\n%s", err, stdout.String())
			}
			if len(cfg.Groups) != 1 || cfg.Groups[0].Health.Path != "/status" || !cfg.Groups[0].Servers[1].Backup {
				t.Errorf("imported %+v", cfg.Groups)
			}
		})
	}
}
