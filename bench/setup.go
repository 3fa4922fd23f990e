package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// moduleRoot is the directory of the tandem module, found from the working
// directory with `go env GOMOD` so the tool also runs from a subdirectory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the tandem module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// buildTandem builds ./cmd/tandem into dir, so the bench measures the
// working tree and not some installed binary.
func buildTandem(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "tandem")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tandem")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tandem: %w\n%s", err, out)
	}
	return bin, nil
}

// gitRev describes the commit of the working tree at root, "-dirty" when
// it has uncommitted changes, so a result says what it measured.
func gitRev(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown commit"
	}
	return strings.TrimSpace(string(out))
}

// findHAProxy returns the haproxy binary, installing Debian's package when
// there is none.
func findHAProxy(ctx context.Context, flagPath string) (string, error) {
	return findTool(ctx, flagPath, "haproxy", "haproxy")
}

// aptInstall installs pkg, refreshing the package lists once if the first
// attempt fails (a fresh container often has none).
func aptInstall(ctx context.Context, pkg string) error {
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if install() == nil {
		return nil
	}
	update := exec.CommandContext(ctx, "apt-get", "update")
	update.Stdout, update.Stderr = os.Stderr, os.Stderr
	if err := update.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if err := install(); err != nil {
		return fmt.Errorf("apt-get install -y %s: %w", pkg, err)
	}
	return nil
}

var haproxyVersionRE = regexp.MustCompile(`HA-?Proxy version (\d+)\.(\d+)`)

// supportsRetryOn reports whether the version line is HAProxy 2.0 or later,
// the first with `retry-on` (layer 7 retries).
func supportsRetryOn(versionLine string) bool {
	m := haproxyVersionRE.FindStringSubmatch(versionLine)
	if m == nil {
		return false
	}
	major, _ := strconv.Atoi(m[1])
	return major >= 2
}

// nproc is the number of CPUs this process may use, as nproc(1) reports it.
func nproc(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return strconv.Itoa(runtime.NumCPU())
}

// loadavg is the first three fields of /proc/loadavg: a busy machine
// explains noisy numbers, so the results record it.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// tail returns the last n lines of a log file, for error messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
