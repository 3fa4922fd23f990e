package h1

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// clientGone waits until the client closes or resets the connection and
// reports it; false when the watch was stopped (the read deadline) first.
// Bytes the client sends meanwhile (a pipelined request, or a TLS
// close_notify, encrypted like any record) are no answer either way, so
// it asks the socket itself: POLLRDHUP tells that the client shut its
// side, whatever data is queued before the FIN.
func clientGone(rc syscall.RawConn) bool {
	gone := false
	err := rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			return false
		}
		if err != nil || n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			gone = true
			return true
		}
		return false // nothing, or data only: wait for the next event
	})
	return err == nil && gone
}
