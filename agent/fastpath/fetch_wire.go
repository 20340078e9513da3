package fastpath

import (
	"context"
	"encoding/binary"
	"io"
	"net"
)

// frameData carries the bytes of the fetched file to a client that asked
// to write it itself (Request.Receive). The agent then never needs write
// access to the client's directory, which its service sandbox usually
// does not give it (ProtectSystem=strict, PGDATA outside its paths).
const frameData = 'D'

// frameReset tells the client to discard the data received so far: the
// agent found its cached copy bad while sending it and sends the file
// again from the store.
const frameReset = 'Z'

type dataKey struct{}

type dataStreams struct {
	data  dataStream
	reset stream
}

func withData(ctx context.Context, data, reset stream) context.Context {
	return context.WithValue(ctx, dataKey{}, &dataStreams{dataStream(data), reset})
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
