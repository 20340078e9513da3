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
}

// dialTimeout bounds the connect, which blocks only while the agent's
// listen backlog is full.
const dialTimeout = 2 * time.Second

// dial connects to the agent's socket. Ending ctx shuts the connection
// down, which wakes a read waiting for the agent; stop closes it.
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
	unregister := context.AfterFunc(ctx, c.shutdown)
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
	return syscall.Close(c.fd)
}
