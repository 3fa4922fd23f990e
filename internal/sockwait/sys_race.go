//go:build race

package sockwait

import (
	"errors"
	"syscall"
)

// Under the race detector the system calls go through package syscall,
// which tells the detector what the kernel read and wrote, and that bytes
// through a socket order what came before them: the raw calls do not, and
// tests that order their goroutines by what crosses the gateway would be
// reported as races. Everything else in IO stays as it is.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
