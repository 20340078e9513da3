package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
)

type dataKey struct{}

type dataStreams struct {
	data  dataStream
	reset stream
	file  fileSender   // conn nil: the client takes no descriptors
	later func(func()) // runs a function once the client has hung up
}

func withData(ctx context.Context, data, reset stream, file fileSender, later func(func())) context.Context {
	return context.WithValue(ctx, dataKey{}, &dataStreams{dataStream(data), reset, file, later})
}

// AfterHangUp runs f once the client of ctx's request has hung up (it has
// then linked or copied a file sent with SendFile), or at once when ctx
// is not a request's. The agent's shutdown runs it without waiting.
func AfterHangUp(ctx context.Context, f func()) {
	if d, _ := ctx.Value(dataKey{}).(*dataStreams); d != nil && d.later != nil {
		d.later(f)
		return
	}
	f()
}

// fileSender sends wire.FrameFile frames over a unix connection.
type fileSender struct {
	stream
	conn *net.UnixConn
}

// errNoFiles: the client cannot take a descriptor.
var errNoFiles = errors.New("fastpath: the client takes no file descriptors")

func (s *fileSender) send(f *os.File, size int64) error {
	if s == nil || s.conn == nil {
		return errNoFiles
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.wrote = true
	if *s.err != nil {
		return *s.err
	}
	var fr [13]byte
	fr[0] = wire.FrameFile
	binary.BigEndian.PutUint32(fr[1:5], 8)
	binary.BigEndian.PutUint64(fr[5:], uint64(size))
	n, _, err := s.conn.WriteMsgUnix(fr[:], syscall.UnixRights(int(f.Fd())), nil)
	if err == nil && n < len(fr) {
		// The descriptor went with the first bytes; the rest is plain data.
		_, err = s.conn.Write(fr[n:])
	}
	if err != nil {
		*s.err = err
	}
	return err
}

// SendFile hands the client f, of size bytes, as an open descriptor,
// when it asked for descriptors (TakesFiles). The caller keeps f and may
// close it once SendFile returns: the client has its own descriptor.
// After an error, discard what was sent (ResetData) before sending the
// bytes with Data.
func SendFile(ctx context.Context, f *os.File, size int64) error {
	d, _ := ctx.Value(dataKey{}).(*dataStreams)
	if d == nil || d.file.conn == nil {
		return errNoFiles
	}
	return d.file.send(f, size)
}

// TakesFiles tells whether the client of ctx's request takes descriptors.
func TakesFiles(ctx context.Context) bool {
	d, _ := ctx.Value(dataKey{}).(*dataStreams)
	return d != nil && d.file.conn != nil
}

// dataStream is a stream whose frames go out with one writev, header and
// payload, without copying the payload (the file's bytes) into a frame.
type dataStream stream

func (s dataStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.wrote = true
	if *s.err != nil {
		return len(p), nil
	}
	var hdr [5]byte
	hdr[0] = s.typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	bufs := net.Buffers{hdr[:], p}
	if _, err := bufs.WriteTo(s.w); err != nil {
		*s.err = err
	}
	return len(p), nil
}

// ResetData tells a receiving client to discard the data sent so far.
func ResetData(ctx context.Context) {
	if d, _ := ctx.Value(dataKey{}).(*dataStreams); d != nil {
		d.reset.Write(nil)
	}
}

// Data is where a handler writes the fetched file for a client that
// receives it (nil when the client asked the agent to write it). The
// client keeps what it receives only if the exit status is 0.
func Data(ctx context.Context) io.Writer {
	if d, _ := ctx.Value(dataKey{}).(*dataStreams); d != nil {
		return d.data
	}
	return nil
}
