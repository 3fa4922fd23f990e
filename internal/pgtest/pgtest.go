// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in a
// temporary directory, postgres on a free loopback port with fsync off, one
// fresh database per test. It uses the server binaries already on the
// machine (Debian's /usr/lib/postgresql/N/bin); when they are missing a test
// fails with a message saying so, it is never skipped.
//
// PostgreSQL refuses to run as root. Under root (CI containers) the server
// runs as the "postgres" user (or "nobody"), set on the child process itself
// so no runuser, su or sudo is needed.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinEnv names the environment variable that may point at the directory
// holding initdb and postgres.
const BinEnv = "PGTEST_BIN"

// ErrNoBinaries means initdb or postgres could not be found.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found")

// Server is one running PostgreSQL.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	n    atomic.Int64

	stopOnce sync.Once
	stopErr  error
}

// FindBin returns the directory holding initdb and postgres: $PGTEST_BIN,
// else the newest /usr/lib/postgresql/N/bin, else $PATH, else pg_config.
func FindBin() (string, error) {
	var looked []string
	ok := func(dir string) bool {
		looked = append(looked, dir)
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(BinEnv); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w in $%s=%s", ErrNoBinaries, BinEnv, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: 15 before 9.6.
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		if va, vb := version(a), version(b); va != vb {
			if va > vb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); ok(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s and $PATH); install them (Debian: apt-get install postgresql) or set $%s to their directory",
		ErrNoBinaries, strings.Join(append(looked, "/usr/lib/postgresql/*/bin"), ", "), BinEnv)
}

// runAs returns the credential the server runs with: none for a normal
// user, the postgres (or nobody) user for root, which PostgreSQL refuses.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		// No supplementary groups: not root's.
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("pgtest: running as root and neither a postgres nor a nobody user exists to run PostgreSQL as (it refuses root)")
}

// Start initialises a data directory and starts a server; Stop ends it and
// removes the directory.
func Start() (*Server, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user. /tmp is traversable by everyone.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: hand the data directory to uid %d: %w", cred.Uid, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A port picked free may be taken before postgres binds it: try again.
	var lastErr error
	for range 3 {
		s, err := startServer(bin, dir, data, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startServer(bin, dir, data string, cred *syscall.Credential) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pgtest: free port: %w", err)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		// Durability is not what these tests are about; speed is.
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	// Pdeathsig is set after the credential change, so a test binary that
	// dies (a panic, a timeout) takes its server with it: fast shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s := &Server{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			c.Close(ctx)
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("pgtest: postgres exited at start: %s", tail(logPath))
		case <-ctx.Done():
			s.kill()
			return nil, fmt.Errorf("pgtest: postgres not ready within 20s (%v): %s", err, tail(logPath))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// DSN returns the URL of database db on this server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Log returns the end of the server's log, for failure reports.
func (s *Server) Log() string { return tail(filepath.Join(s.dir, "postgres.log")) }

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// removes its directory.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.stopErr = errors.New("pgtest: postgres did not stop within 10s of SIGINT; killed")
			s.kill()
		}
		if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("pgtest: %w", err)
		}
	})
	return s.stopErr
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDB creates a fresh, empty database whose name starts with hint and
// returns its DSN.
func (s *Server) CreateDB(ctx context.Context, hint string) (string, error) {
	name := unsafeName.ReplaceAllString(strings.ToLower(hint), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", s.n.Add(1), name)
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// New starts a server for t and stops it when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// NewDB creates a fresh database for t and returns its DSN.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsn, err := s.CreateDB(ctx, t.Name())
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	return dsn
}

// The package-wide server: started by the first DB call, stopped by Main.
var shared struct {
	mu    sync.Mutex
	main  bool
	srv   *Server
	err   error
	tried bool
}

// Main runs the package's tests with one shared server, started on first
// use and stopped at the end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the package's shared server, starting it on first use.
// The test package must call Main from its TestMain.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("pgtest: Shared and DB need `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }` in the test package (it stops the server); or use pgtest.New")
	}
	if !shared.tried {
		shared.tried = true
		shared.srv, shared.err = Start()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// DB returns the DSN of a fresh database on the package's shared server.
func DB(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDB(t)
}
