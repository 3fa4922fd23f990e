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

// connected reports whether the socket of a dial still under way is in
// fact connected: the kernel finished the handshake, and only the
// gateway's goroutine, starved, has not seen it yet.
func connected(rc syscall.RawConn) bool {
	ok := false
	err := rc.Control(func(fd uintptr) {
		soErr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil || soErr != 0 {
			return
		}
		_, err = unix.Getpeername(int(fd))
		ok = err == nil
	})
	return err == nil && ok
}
