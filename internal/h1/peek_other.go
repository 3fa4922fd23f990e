//go:build !unix

package h1

import "syscall"

// clientGone cannot peek here: a client's leaving goes unnoticed until the
// answer is written.
func clientGone(rc syscall.RawConn) bool {
	rc.Read(func(uintptr) bool { return true })
	return false
}
