//go:build !linux

package health

import (
	"net"
	"syscall"
)

// unread would be the bytes waiting in c's receive buffer; elsewhere than
// on Linux it is not asked, and only a response head already read extends
// a check's wait.
func unread(net.Conn) int { return 0 }

// connected would tell a dial the kernel finished; elsewhere than on Linux
// it is not asked, and a dial's timeout is final.
func connected(syscall.RawConn) bool { return false }
