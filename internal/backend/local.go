package backend

import (
	"errors"
	"syscall"
)

// LocalError reports whether err is the gateway's own shortage, not the
// server's fault: out of file descriptors (EMFILE, ENFILE), of socket
// buffers or memory (ENOBUFS, ENOMEM), of local ports (EADDRNOTAVAIL).
// Such a failure must never mark a server down or switch: every server
// would fail the same way.
func LocalError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
