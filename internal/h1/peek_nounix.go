//go:build !unix

package h1

import "syscall"

// clientGone cannot watch the socket here: a client's leaving goes
// unnoticed until the answer is written.
func clientGone(rc syscall.RawConn, isTLS bool) bool {
	rc.Read(func(uintptr) bool { return true })
	return false
}
