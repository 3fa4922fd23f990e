package h1

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// clientGone waits until the client closes or resets the connection and
// reports it; false when the watch was stopped (the read deadline) first,
// or when the client sent more before closing its side: a pipelined
// request, which is to be served (the client still reads), as net/http
// does.
//
// It asks the socket itself rather than reading: POLLRDHUP tells that the
// client shut its side, and what is queued before the FIN tells whether
// anything is left to serve. On TLS, a client closing sends close_notify
// first, an encrypted record no bigger than an alert: that alone queued
// means gone too.
func clientGone(rc syscall.RawConn, isTLS bool) bool {
	gone := false
	err := rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			return false
		}
		if err != nil || n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			gone = true // reset, or both sides shut
			return true
		}
		if n == 0 || fds[0].Revents&unix.POLLRDHUP == 0 {
			return false // nothing, or data only: wait for the next event
		}
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		gone = err != nil || queued == 0 || isTLS && onlyAlert(int(fd), queued)
		return true
	})
	return err == nil && gone
}

// maxAlertRecord is the largest TLS record an alert makes: 5 bytes of
// header, at most 8 of explicit nonce (TLS 1.2 GCM), 2 of alert, 1 of
// inner content type (TLS 1.3) and 16 of AEAD tag. An HTTP request, even
// the shortest, makes a larger one.
const maxAlertRecord = 5 + 8 + 2 + 1 + 16

// onlyAlert reports whether the queued bytes are one alert-sized TLS record.
func onlyAlert(fd, queued int) bool {
	if queued > maxAlertRecord {
		return false
	}
	var b [maxAlertRecord]byte
	n, _, err := unix.Recvfrom(fd, b[:queued], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == nil && n == queued && n >= 5 && 5+(int(b[3])<<8|int(b[4])) == n
}
