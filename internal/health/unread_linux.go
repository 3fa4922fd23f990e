package health

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unread is how many bytes wait in c's receive buffer, read by no one yet:
// an answer that came while the gateway was too busy to read it.
func unread(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	if err := rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0
	}
	return n
}
