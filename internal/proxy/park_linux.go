package proxy

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// parker holds the websocket pumps that have nothing to relay: their
// sockets wait in an epoll set of the parker's own, so an idle websocket
// holds no goroutine and no buffer (issue 9: 10,000 idle websockets in a
// few tens of MB). The first byte, or a hang-up, wakes its pump again.
//
// There is one per process, started when first needed: it is shared by
// every proxy and lives as long as the sockets it watches, which outlive
// any one config or listener.
type parker struct {
	epfd int
	mu   sync.Mutex
	// parked maps a socket to the pump waiting on it. A socket is never
	// closed while its pump is parked (unpark comes first), so a number
	// here always names the socket it was parked with.
	parked map[int32]*pump
}

var (
	parkOnce  sync.Once
	theParker *parker // nil where epoll could not be had: pumps never park
)

func getParker() *parker {
	parkOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		theParker = &parker{epfd: fd, parked: map[int32]*pump{}}
		go theParker.run()
	})
	return theParker
}

// run wakes the pumps whose sockets became readable, for the process's
// life. epoll_wait blocks one thread of its own, not a P: the runtime
// hands the P on while it waits.
func (k *parker) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(k.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // EBADF or EINVAL: nothing left to wait on
		}
		for _, ev := range events[:n] {
			k.mu.Lock()
			p := k.parked[ev.Fd]
			delete(k.parked, ev.Fd)
			k.mu.Unlock()
			if p != nil {
				p.resume()
			}
		}
	}
}

// park puts p's socket in the set, armed for one event (level-triggered:
// a byte that came before the call wakes it at once, none is missed).
func (k *parker) park(p *pump) error {
	var err error
	cerr := p.rc.Control(func(fd uintptr) {
		k.mu.Lock()
		defer k.mu.Unlock()
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
		k.parked[ev.Fd] = p
		// A socket parked before stays in the set, disarmed, until it is
		// closed: armed again, not added.
		err = unix.EpollCtl(k.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(err, unix.ENOENT) {
			err = unix.EpollCtl(k.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
		if err != nil {
			delete(k.parked, ev.Fd)
		}
	})
	return errors.Join(cerr, err)
}

// unpark takes p's socket out of the set if p is parked on it. Control
// holds the socket open meanwhile, so the number is p's socket and no
// other that reused it.
func (k *parker) unpark(p *pump) {
	p.rc.Control(func(fd uintptr) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.parked[int32(fd)] == p {
			delete(k.parked, int32(fd))
			_ = unix.EpollCtl(k.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		}
	})
}

// wouldBlock reports whether a read of the socket would wait: nothing
// queued, no end or error to report.
func wouldBlock(rc syscall.RawConn) bool {
	block := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		block = errors.Is(err, unix.EAGAIN)
	})
	return block
}
