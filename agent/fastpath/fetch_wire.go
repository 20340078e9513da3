package fastpath

import (
	"context"
	"io"
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

type dataStreams struct{ data, reset stream }

func withData(ctx context.Context, data, reset stream) context.Context {
	return context.WithValue(ctx, dataKey{}, &dataStreams{data, reset})
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
