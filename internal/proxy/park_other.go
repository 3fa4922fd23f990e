//go:build !linux

package proxy

import (
	"errors"
	"syscall"
)

// parker is Linux's epoll set; elsewhere websocket pumps never park and
// an idle websocket holds its two goroutines.
type parker struct{}

func getParker() *parker { return nil }

func (k *parker) park(p *pump) error     { return errors.ErrUnsupported }
func (k *parker) unpark(p *pump)         {}
func wouldBlock(rc syscall.RawConn) bool { return false }
