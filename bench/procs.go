package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// procs starts the child processes of a run and owns their lifetime: every
// child is killed by killAll, which main defers and also reaches on Ctrl-C.
type procs struct {
	dir string // logs go to dir/NAME.log

	mu   sync.Mutex
	list []*proc
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process was reaped
	// stopSig, when set, is sent before SIGKILL (see kill).
	stopSig syscall.Signal
}

// start runs bin with args; its stdout and stderr are appended to
// dir/name.log so that a restarted master keeps one log.
func (ps *procs) start(name, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(ps.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status of a child we kill is not news
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// signal sends sig to the process if it still runs.
func (p *proc) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s already exited", p.name)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// kill ends the process at once and waits for it. SIGKILL also ends a
// stopped process, but SIGCONT first costs nothing and keeps it obvious.
// A process with a stop signal (nginx: SIGTERM, on which its master ends
// its workers, who outlive a master killed alone) gets it first, and a
// moment to exit.
func (p *proc) kill() {
	_ = p.signal(syscall.SIGCONT)
	if p.stopSig != 0 && p.signal(p.stopSig) == nil {
		select {
		case <-p.done:
			return
		case <-time.After(2 * time.Second):
		}
	}
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// errDied says a child exited while the bench still needed it. On a shared
// machine something else (an OOM kill, someone's `pkill -f demoapp`) can do
// that; the measurement is then worthless and is run again.
var errDied = errors.New("a child process died during the measurement")

// alive returns errDied, naming the first of ps that has exited.
func alive(ps ...*proc) error {
	for _, p := range ps {
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s (%v)", errDied, p.name, p.cmd.ProcessState)
		default:
		}
	}
	return nil
}

// retryDied runs fn up to attempts times while it fails with errDied.
func retryDied(what string, attempts int, fn func() error) error {
	var err error
	for i := range attempts {
		if err = fn(); !errors.Is(err, errDied) {
			return err
		}
		if i+1 < attempts {
			fmt.Fprintf(os.Stderr, "  %s: %v; running it again\n", what, err)
		}
	}
	return err
}

// killAll kills every child still running, the newest first.
func (ps *procs) killAll() {
	ps.mu.Lock()
	list := slices.Clone(ps.list)
	ps.list = nil
	ps.mu.Unlock()
	for _, p := range slices.Backward(list) {
		p.kill()
	}
}

// freeAddr returns a loopback address nobody listens on right now. The port
// is released before the child binds it; on loopback the race is benign.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitListening waits until addr accepts TCP connections or p exits.
func waitListening(ctx context.Context, p *proc, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (see %s.log)", p.name, addr, p.name)
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", p.name, addr, errors.Join(ctx.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// meter measures the CPU p's process tree spends per request.
func (p *proc) meter() cpuMeter { return cpuMeter{pid: p.cmd.Process.Pid} }
