package fastpath

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"
)

// conn is the client's end of the agent's socket: a blocking socket used
// through plain system calls. A short-lived client waits for one answer,
// and the runtime's network poller (its epoll set and the thread wake-ups
// of every wait) would cost the front more than the request itself.
type conn struct {
	fd     int
	mu     sync.Mutex
	closed bool
	wake   *time.Timer // set once the client was told to stop
}

// dialTimeout bounds the connect, which blocks only while the agent's
// listen backlog is full.
const dialTimeout = 2 * time.Second

// stopWait bounds how long a client told to stop (ctx ended) still waits
// for the agent's answer (a variable for tests).
var stopWait = 5 * time.Second

// dial connects to the agent's socket; stop closes it. Ending ctx hangs
// up the client's side: the agent then stops the work and reports how it
// ended, its log lines and exit status, as the client's own run would
// have. A read still waiting stopWait later is woken with an error.
func dial(ctx context.Context, path string) (c *conn, stop func(), err error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c = &conn{fd: fd}
	tv := syscall.NsecToTimeval(dialTimeout.Nanoseconds())
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	err = retryEINTR(func() error { return syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}) })
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%w: connect %s: %v", ErrUnavailable, path, err)
	}
	tv = syscall.Timeval{}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	unregister := context.AfterFunc(ctx, c.hangUp)
	return c, func() { unregister(); c.Close() }, nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

func (c *conn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(c.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := syscall.Write(c.fd, p[written:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// recvmsg reads bytes and any descriptors sent with them (close-on-exec).
func (c *conn) recvmsg(p, oob []byte) (n, oobn, flags int, err error) {
	for {
		n, oobn, flags, _, err = syscall.Recvmsg(c.fd, p, oob, syscall.MSG_CMSG_CLOEXEC)
		if err != syscall.EINTR {
			return n, oobn, flags, err
		}
	}
}

// hangUp closes the client's sending side, which the agent takes as the
// client going away, and arms the wake-up of a read that waits too long.
func (c *conn) hangUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.wake == nil {
		syscall.Shutdown(c.fd, syscall.SHUT_WR)
		c.wake = time.AfterFunc(stopWait, c.shutdown)
	}
}

// shutdown wakes whatever waits on the connection (close alone does not).
func (c *conn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
}

func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.wake != nil {
		c.wake.Stop()
	}
	return syscall.Close(c.fd)
}
