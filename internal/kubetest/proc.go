package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a component has to exit after SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// proc is one component: its output goes to a log file in the test bed's
// directory.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // set before done is closed

	stopOnce sync.Once
}

// startProc starts bin/name with args, its output in a log file, and adds
// it to the components stopped by stop.
func (c *Cluster) startProc(bin, name string, args ...string) (*proc, error) {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", name, n))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Nothing from the caller's environment decides which cluster a
	// component talks to; kwok reads ~/.kwok/kwok.yaml when it exists.
	env := []string{"HOME=" + c.dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	// A test binary that dies (a panic, a timeout) takes its components
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr is how the process ended; call it after exited reports true.
func (p *proc) exitErr() error {
	<-p.done
	if p.err == nil {
		return fmt.Errorf("%s exited with status 0", p.name)
	}
	return p.err
}

// addrInUse reports whether the log says a port was taken: worth another
// try with other ports.
func (p *proc) addrInUse() bool {
	return strings.Contains(readFile(p.logPath), "address already in use")
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		if p.exited() {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// stopAll stops ps at the same time.
func stopAll(ps []*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
}
