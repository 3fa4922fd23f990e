//go:build unix && !linux

package main

import "syscall"

// childAttr puts a child in its own process group so that Ctrl-C in the
// terminal reaches only the bench, which kills its children itself.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
