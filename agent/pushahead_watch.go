package agent

import (
	sys "golang.org/x/sys/unix"
)

// watch calls kick whenever a file is created in or moved into dir
// (PostgreSQL writes each .ready file under a temporary name and renames
// it). It returns a stop function. When inotify is unavailable it does
// nothing: the caller's poll still finds every file, only later.
func watch(dir string, kick func()) (stop func()) {
	fd, err := sys.InotifyInit1(sys.IN_CLOEXEC | sys.IN_NONBLOCK)
	if err != nil {
		return func() {}
	}
	if _, err := sys.InotifyAddWatch(fd, dir, sys.IN_CREATE|sys.IN_MOVED_TO); err != nil {
		sys.Close(fd)
		return func() {}
	}
	// A pipe wakes the poll loop at stop, so the descriptor is closed by
	// the goroutine that reads it and never reused under its feet.
	var wake [2]int
	if err := sys.Pipe2(wake[:], sys.O_CLOEXEC|sys.O_NONBLOCK); err != nil {
		sys.Close(fd)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sys.Close(fd)
		defer sys.Close(wake[0])
		buf := make([]byte, 64*(sys.SizeofInotifyEvent+sys.NAME_MAX+1))
		fds := []sys.PollFd{{Fd: int32(fd), Events: sys.POLLIN}, {Fd: int32(wake[0]), Events: sys.POLLIN}}
		for {
			if _, err := sys.Poll(fds, -1); err != nil && err != sys.EINTR {
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			if fds[0].Revents != 0 {
				for {
					if n, err := sys.Read(fd, buf); n <= 0 || err != nil {
						break
					}
				}
				kick()
			}
		}
	}()
	return func() {
		sys.Write(wake[1], []byte{0})
		<-done
		sys.Close(wake[1])
	}
}
