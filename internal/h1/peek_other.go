//go:build unix && !linux

package h1

import (
	"errors"
	"syscall"
)

// clientGone waits until the socket is readable and reports whether that
// is because the client closed or reset it; false when the client sent
// more (a pipelined request, or on TLS any record, close_notify included:
// without Linux's POLLRDHUP that goes unnoticed) or the watch was stopped.
func clientGone(rc syscall.RawConn, isTLS bool) bool {
	gone := false
	var b [1]byte
	err := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return false
		}
		gone = n == 0 || err != nil
		return true
	})
	return err == nil && gone
}
