package main

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C in the
// terminal reaches only the bench (which then kills its children in order),
// and asks the kernel to kill the child should the bench die without
// cleaning up (Pdeathsig fires when the creating thread exits; Go does not
// retire threads that did not lock themselves, so in practice at our exit).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
