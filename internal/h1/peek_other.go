//go:build !linux

package h1

import "syscall"

// clientGone needs Linux's POLLRDHUP: elsewhere a client's leaving goes
// unnoticed until the answer is written.
func clientGone(rc syscall.RawConn) bool {
	rc.Read(func(uintptr) bool { return true })
	return false
}
