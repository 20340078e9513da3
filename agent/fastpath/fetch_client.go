package fastpath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
	"golang.org/x/sys/unix"
)

// Fetch hands a wal-fetch to the agent on the socket at path and writes
// the file the agent sends to dest itself: a temporary name in dest's
// directory, renamed onto dest only once the agent reports
// success, so that nothing is left at dest otherwise. The command's log
// lines are copied to stdout and stderr as they arrive.
//
// It returns the command's exit status, or an error wrapping
// ErrUnavailable or ErrRefused (or a broken connection) when the caller
// must do the work itself. It imports nothing heavy: a small front
// program can call it without the rest of walden.
func Fetch(ctx context.Context, path string, req *Request, dest string, stdout, stderr io.Writer) (int, error) {
	c, stop, err := dial(ctx, path)
	if err != nil {
		return 0, err
	}
	defer stop()

	// Before asking: an unwritable directory is then reported by the
	// caller's own run, in its words, with nothing logged by the agent.
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".walden-fetch-*")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	kept := false
	linked := "" // the agent's file linked into dest's directory
	fr := &fdReader{c: c, oob: make([]byte, syscall.CmsgSpace(4))}
	req.Files = true
	defer func() {
		fr.close()
		if !kept {
			tmp.Close()
			os.Remove(tmp.Name())
			if linked != "" {
				os.Remove(linked)
			}
		}
	}()

	req.Receive = true
	got := false
	var werr error
	status, err := exchange(ctx, c, fr, make([]byte, 1<<20), req, stdout, stderr, func(typ byte, p []byte) error {
		switch typ {
		case wire.FrameData:
			got = true
			if werr == nil {
				_, werr = tmp.Write(p)
			}
		case wire.FrameFile:
			f, size, err := fr.file(p)
			if err != nil {
				return err
			}
			got = true
			if werr == nil {
				if l, ok := linkInto(f, size, tmp.Name()); ok {
					linked = l
				} else {
					werr = copyInto(tmp, f, size)
				}
			}
			f.Close()
		case wire.FrameReset:
			got = false
			if linked != "" {
				os.Remove(linked)
				linked = ""
			}
			if werr == nil {
				if werr = tmp.Truncate(0); werr == nil {
					_, werr = tmp.Seek(0, io.SeekStart)
				}
			}
		default:
			return fmt.Errorf("fastpath: unknown frame %q", typ)
		}
		return nil
	})
	if err != nil || status != 0 || !got {
		// Failed, or an agent that wrote dest itself.
		return status, err
	}
	// Not synced, as a standalone wal-fetch (and WAL-E, and cp) does not:
	// PostgreSQL reads the file at once, fetches it again after a crash,
	// and makes durable (durable_rename) what it keeps. A sync here costs
	// more than the fetch.
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	from := tmp.Name()
	if linked != "" {
		from = linked
	}
	if werr == nil {
		werr = os.Rename(from, dest)
	}
	if werr != nil {
		// The agent's bytes are lost; the caller's own run fetches again
		// and reports the failure in its words.
		return 0, fmt.Errorf("%w: writing %s: %v", ErrUnavailable, dest, werr)
	}
	if linked != "" {
		os.Remove(tmp.Name())
	}
	kept = true
	return 0, nil
}

// fdReader reads a unix connection with recvmsg, keeping the descriptors
// that arrive with the bytes (one per wire.FrameFile), in order.
type fdReader struct {
	c   *conn
	oob []byte
	fds []int
}

func (r *fdReader) Read(p []byte) (int, error) {
	n, oobn, flags, err := r.c.recvmsg(p, r.oob)
	if oobn > 0 {
		msgs, perr := syscall.ParseSocketControlMessage(r.oob[:oobn])
		for _, m := range msgs {
			if fds, err := syscall.ParseUnixRights(&m); err == nil {
				r.fds = append(r.fds, fds...)
			}
		}
		if perr != nil && err == nil {
			err = perr
		}
	}
	if err == nil && flags&syscall.MSG_CTRUNC != 0 {
		err = errors.New("fastpath: a file descriptor from the agent was cut off")
	}
	if n == 0 && err == nil && len(p) > 0 {
		// recvmsg's 0 is the end of the stream.
		err = io.EOF
	}
	return n, err
}

// file takes the descriptor of a wire.FrameFile frame with payload p.
func (r *fdReader) file(p []byte) (*os.File, int64, error) {
	if r == nil || len(r.fds) == 0 || len(p) != 8 {
		return nil, 0, errors.New("fastpath: bad file frame from the agent")
	}
	fd := r.fds[0]
	r.fds = r.fds[1:]
	return os.NewFile(uintptr(fd), "agent file"), int64(binary.BigEndian.Uint64(p)), nil
}

func (r *fdReader) close() {
	if r == nil {
		return
	}
	for _, fd := range r.fds {
		syscall.Close(fd)
	}
	r.fds = nil
}

// linkInto gives f, which must be size bytes, a second name beside tmp:
// no byte is copied. It works when f is a regular file on the same mount
// as tmp's directory (the agent's cache beside PGDATA); ok is false
// otherwise, and the caller copies.
func linkInto(f *os.File, size int64, tmp string) (string, bool) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return "", false
	}
	name := tmp + ".link"
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return "", false
	}
	return name, true
}

// copyInto copies f's size bytes into tmp, in the kernel where it can
// (copy_file_range, as cp does).
func copyInto(tmp, f *os.File, size int64) error {
	n, err := io.Copy(tmp, f)
	if err == nil && n != size {
		err = fmt.Errorf("the agent's file has %d bytes, not %d", n, size)
	}
	return err
}
