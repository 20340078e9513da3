// Package server is the agent's side of the fast path (package fastpath
// is the client's, internal/wire the protocol): it answers wal-push and
// wal-fetch requests on a unix socket.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
	"golang.org/x/sys/unix"
)

// Reply is what a Handler reports about one request.
type Reply struct {
	Status   int
	NotFound bool // wal-fetch of a file the store does not hold
}

// Request is one request as the client sent it.
type Request = wire.Request

// Handler runs one request, writing the command's output to stdout and
// stderr. A non-nil error refuses the request (the client then does the
// work itself); refuse only before writing anything.
type Handler func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error)

// Server answers requests on a unix socket.
type Server struct {
	ln          net.Listener
	path        string
	ino         uint64
	handler     Handler
	fingerprint func() string
	uid         int

	ctx       context.Context // ends when draining is over
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once
}

// ErrInUse is wrapped by Listen's error when a live agent owns the socket.
var ErrInUse = errors.New("another agent is already listening")

// Listen creates the socket at path, mode 0600, replacing a stale socket
// left by a dead agent but refusing to steal one a live agent answers on.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w on %s", ErrInUse, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 from its creation: there is no window
	// in which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve answers on ln until Close. fingerprint returns the agent's current
// configuration fingerprint; requests carrying another one are refused.
func Serve(ln net.Listener, fingerprint func() string, h Handler) *Server {
	s := &Server{ln: ln, handler: h, fingerprint: fingerprint, uid: os.Getuid(), closed: make(chan struct{})}
	if a, ok := ln.Addr().(*net.UnixAddr); ok {
		s.path = a.Name
		if fi, err := os.Stat(s.path); err == nil {
			s.ino = fi.Sys().(*syscall.Stat_t).Ino
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
		}()
	}
}

// Close stops accepting, lets requests in flight finish for up to grace,
// then cancels them (their clients then redo the work themselves), and
// removes the socket if it is still the one this server made.
func (s *Server) Close(grace time.Duration) {
	s.closeOnce.Do(func() { s.close(grace) })
}

func (s *Server) close(grace time.Duration) {
	close(s.closed)
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancel()
		<-done
	}
	s.cancel()
	if s.path != "" {
		if fi, err := os.Stat(s.path); err == nil && fi.Sys().(*syscall.Stat_t).Ino == s.ino {
			os.Remove(s.path)
		}
	}
}

// hangUpWait bounds how long a request's AfterHangUp functions wait for
// its client to hang up.
const hangUpWait = 10 * time.Second

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := wire.ReadFrame(c)
	if err != nil || typ != wire.FrameRequest {
		return
	}
	c.SetReadDeadline(time.Time{})
	req, err := wire.ParseRequest(p)
	if err == wire.ErrOldProtocol {
		wire.WriteFrame(c, wire.FrameRefuse, []byte(fmt.Sprintf("%v, agent speaks %d", err, wire.Version)))
		return
	}
	if err != nil {
		wire.WriteFrame(c, wire.FrameRefuse, []byte("malformed request: "+err.Error()))
		return
	}
	isCheck := req.Command == wire.CommandCheck
	if uid, ok := peerUID(c); !ok || (uid != s.uid && !(isCheck && uid == 0)) {
		// Work done for another user would create files as the wrong owner.
		// A check creates only the agent's own probe and tells nothing
		// root could not read anyway, so root may ask for one.
		wire.WriteFrame(c, wire.FrameRefuse, []byte(fmt.Sprintf("peer uid %d is not the agent's uid %d", uid, s.uid)))
		return
	}
	if req.Version != wire.Version {
		wire.WriteFrame(c, wire.FrameRefuse, []byte(fmt.Sprintf("protocol version %d, agent speaks %d", req.Version, wire.Version)))
		return
	}
	// A check reports on the agent's own configuration, whichever the
	// caller has: the caller compares and says when they differ.
	if !isCheck && req.Fingerprint != s.fingerprint() {
		wire.WriteFrame(c, wire.FrameRefuse, []byte("configuration differs from the agent's"))
		return
	}

	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	gone := make(chan struct{})
	go func() {
		// The client sends nothing more: a read returns only when it hangs
		// up (killed, its own SIGTERM, or done), and the work then stops too.
		var b [1]byte
		c.Read(b[:])
		cancel()
		close(gone)
	}()
	var mu sync.Mutex
	var wrote bool
	var werr error
	var later []func()
	defer func() {
		mu.Lock()
		fs := later
		mu.Unlock()
		if len(fs) == 0 {
			return
		}
		select {
		case <-gone:
		case <-s.closed:
		case <-time.After(hangUpWait):
		}
		for _, f := range fs {
			f()
		}
	}()
	out := stream{mu: &mu, w: c, typ: wire.FrameStdout, wrote: &wrote, err: &werr}
	errw := stream{mu: &mu, w: c, typ: wire.FrameStderr, wrote: &wrote, err: &werr}
	if req.Receive {
		var files fileSender
		if uc, ok := c.(*net.UnixConn); ok && req.Files {
			files = fileSender{stream{mu: &mu, w: c, typ: wire.FrameFile, wrote: &wrote, err: &werr}, uc}
		}
		ctx = withData(ctx, stream{mu: &mu, w: c, typ: wire.FrameData, wrote: &wrote, err: &werr},
			stream{mu: &mu, w: c, typ: wire.FrameReset, wrote: &wrote, err: &werr}, files,
			func(f func()) { mu.Lock(); later = append(later, f); mu.Unlock() })
	}
	rep, herr := s.safeHandle(ctx, req, out, errw)
	mu.Lock()
	defer mu.Unlock()
	if herr != nil {
		wire.WriteFrame(c, wire.FrameRefuse, []byte(herr.Error()))
		return
	}
	if s.ctx.Err() != nil {
		// Cut short by the agent's shutdown: no status, so the client falls
		// back and does the work itself rather than report our failure.
		return
	}
	wire.WriteFrame(c, wire.FrameExit, wire.AppendExit(nil, rep.Status))
}

func (s *Server) safeHandle(ctx context.Context, req *Request, out, errw io.Writer) (rep Reply, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("agent error: %v", r)
		}
	}()
	return s.handler(ctx, req, out, errw)
}

func peerUID(c net.Conn) (int, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return -1, false
	}
	return int(cred.Uid), true
}

// stream is an io.Writer that sends each Write as one frame of its type.
type stream struct {
	mu    *sync.Mutex
	w     io.Writer
	typ   byte
	wrote *bool
	err   *error
}

func (s stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.wrote = true
	if *s.err != nil {
		// The client is gone; the command still finishes its work.
		return len(p), nil
	}
	if err := wire.WriteFrame(s.w, s.typ, p); err != nil {
		*s.err = err
	}
	return len(p), nil
}
