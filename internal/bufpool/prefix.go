package bufpool

import "net"

// PrefixConn is a connection with bytes read of it already, which are
// read again first: a client connection the fast path hands over, a
// server connection whose reader is given up. Buffered and NetConn let a
// websocket relay park its pump on the socket itself once those bytes are
// gone; CloseWrite lets net/http half-close before closing (the client
// then reads the last answer rather than a reset).
type PrefixConn struct {
	net.Conn
	Pre []byte
}

func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Pre) > 0 {
		n := copy(p, c.Pre)
		if c.Pre = c.Pre[n:]; len(c.Pre) == 0 {
			c.Pre = nil // for the connection's life, no buffer
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *PrefixConn) Buffered() int     { return len(c.Pre) }
func (c *PrefixConn) NetConn() net.Conn { return c.Conn }

func (c *PrefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
